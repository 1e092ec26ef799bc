/**
 * Number, fraction and LaTeX normalisation (pure string work; evaluation lives in symbolic.ts).
 *
 * Peers: MathRuler's `_normalize` (EasyR1/verl geo3k: strips `\text{}`, `$`, `%`, units, `^\circ`, braces,
 * spaces; maps million/billion), Math-Verify's LaTeX normalisation (`\dfrac`→`\frac`, boxed, units, equations
 * `x=5`→`5`), `extract_boxed_content` (the LAST `\boxed{…}`, brace-balanced), and `numeric_reward`
 * (`float(a) == float(b)`, exact) — peers.md §b.0.
 *
 * Where we differ, deliberately:
 * - Thousands separators are accepted only in well-formed groups (`1,000`, `12,345.6`, `1{,}000`, `1\,000`);
 *   `1,00` is NOT 100 (it may be a tuple), where MathRuler would delete every comma.
 * - Units are stripped only at the END of a number (`3 cm`, `3cm^2`, `45°`, `45^\circ`, `5 km/h`) from a fixed
 *   list below, and a currency sign only at the start; the remainder must then be a number on its own. Words
 *   other than units are never stripped ("3 apples" is not a number here; accuracy.ts may still find the single
 *   number inside a sentence).
 * - A percent keeps both readings: `50%` gives the candidates 50 and 0.5 (MathRuler strips `%` → 50 only).
 * - A mixed number `1\frac{1}{2}` (integer immediately followed by a fraction of integers) means 1 + 1/2, as in
 *   PRM800K (`-1\frac{1}{2}` = −1.5); any other juxtaposition is a product (`2\sqrt{3}`, `2\pi`).
 */

/** Content of the LAST `\boxed{…}` / `\fbox{…}` (brace-balanced), `\boxed 5` form included; undefined if none. */
export function extractBoxed(text: string): string | undefined {
  const re = /\\(?:boxed|fbox)\s*/g;
  let result: string | undefined;
  let closeOf: Map<number, number> | undefined;
  let m: RegExpExecArray | null;
  while ((m = re.exec(text)) !== null) {
    const start = m.index + m[0].length;
    if (text[start] === '{') {
      closeOf ??= braceMatches(text);
      const end = closeOf.get(start);
      if (end === undefined) continue;
      result = text.slice(start + 1, end);
      re.lastIndex = end + 1;
    } else {
      const tail = /^[^\s$]+/.exec(text.slice(start, start + 200));
      if (tail) result = tail[0];
    }
  }
  return result;
}

/** Every matched `{` → its `}` in one pass (escaped `\{`, `\}` are skipped), so lookups stay linear overall. */
function braceMatches(s: string): Map<number, number> {
  const out = new Map<number, number>();
  const stack: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 92 /* \\ */) i++;
    else if (c === 123 /* { */) stack.push(i);
    else if (c === 125 /* } */ && stack.length > 0) out.set(stack.pop() as number, i);
  }
  return out;
}

/** Index of the `}` matching the `{` at `open`, or -1. */
export function matchingBrace(s: string, open: number): number {
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') {
      i++; // skip escaped char (\{ \})
      continue;
    }
    if (c === '{') depth++;
    else if (c === '}') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

const TEXT_COMMANDS =
  /\\(?:text|textbf|textit|textrm|textnormal|mathrm|mathbf|mathit|mathsf|mathtt|mbox|operatorname|boldsymbol|bm|displaystyle|textstyle)\s*\{([^{}]*)\}/g;

/**
 * LaTeX/Unicode clean-up shared by every comparison: drops math delimiters (`$`, `\(`, `\[`), unwraps `\text{}`
 * and friends, `\left`/`\right`, spacing commands; `\dfrac`/`\tfrac`/`\cfrac` → `\frac`; degree signs → `°`;
 * `\%` → `%`; `\cdot`, `\times`, `×`, `·` → `*`; `\div`, `÷` → `/`; Unicode minus → `-`; collapses whitespace and
 * drops a trailing sentence period. Never throws.
 */
export function normalizeLatex(input: string): string {
  let s = input;
  // Digit grouping written the LaTeX way: 1{,}000 and 1\,000 / 1\;000 / 1~000 (thin spaces).
  s = s.replace(/(\d)\{,\}(?=\d{3})/g, '$1,');
  s = s.replace(/(\d)(?:\\[,;: ]|~)(?=\d{3}(?!\d))/g, '$1');
  s = s.replace(/\\\$/g, '$');
  s = s.replace(/\\[()[\]]/g, ' ');
  s = s.replace(/\\displaystyle/g, ' ');
  for (let i = 0; i < 4; i++) {
    const next = s.replace(TEXT_COMMANDS, ' $1 ');
    if (next === s) break;
    s = next;
  }
  s = s.replace(/\\(?:left|right|bigl|bigr|Bigl|Bigr|big|Big)(?![a-zA-Z])\s*/g, '');
  s = s.replace(/\\[dtc]frac(?![a-zA-Z])/g, '\\frac');
  s = s.replace(/\^\s*\{\s*\\circ\s*\}|\^\s*\\circ(?![a-zA-Z])|\\circ(?![a-zA-Z])|\\degree(?![a-zA-Z])|º/g, '°');
  s = s.replace(/℃/g, '°C').replace(/℉/g, '°F');
  s = s.replace(/\\%/g, '%');
  s = s.replace(/\\(?:cdot|times)(?![a-zA-Z])|[×·⋅∙]/g, '*');
  s = s.replace(/\\div(?![a-zA-Z])|÷/g, '/');
  s = s.replace(/[−–‒﹣－]/g, '-');
  s = s.replace(/[０-９]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0xfee0));
  s = s.replace(/\\(?:[,;:! ]|quad|qquad)|~/g, ' ');
  s = s.replace(/\$/g, ' ');
  s = s.replace(/\s+/g, ' ').trim();
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 46 /* . */) end--;
  return s.slice(0, end).trim();
}

// Units stripped after a number. Matched case-insensitively except where case matters (listed separately).
const UNIT_WORDS = [
  // length
  'mm', 'cm', 'dm', 'm', 'km', 'nm', 'um', 'μm', 'in', 'inch', 'inches', 'ft', 'foot', 'feet', 'yd', 'yard', 'yards',
  'mi', 'mile', 'miles', 'meter', 'meters', 'metre', 'metres', 'centimeter', 'centimeters', 'centimetre',
  'centimetres', 'millimeter', 'millimeters', 'millimetre', 'millimetres', 'kilometer', 'kilometers', 'kilometre',
  'kilometres', 'units', 'unit',
  // mass
  'mg', 'g', 'kg', 'gram', 'grams', 'kilogram', 'kilograms', 'milligram', 'milligrams', 'lb', 'lbs', 'pound',
  'pounds', 'oz', 'ounce', 'ounces', 'ton', 'tons', 'tonne', 'tonnes',
  // time
  'ms', 's', 'sec', 'secs', 'second', 'seconds', 'min', 'mins', 'minute', 'minutes', 'h', 'hr', 'hrs', 'hour',
  'hours', 'day', 'days', 'week', 'weeks', 'month', 'months', 'year', 'years', 'yr', 'yrs',
  // volume
  'l', 'ml', 'liter', 'liters', 'litre', 'litres', 'milliliter', 'milliliters', 'gal', 'gallon', 'gallons',
  // speed, angle, physics
  'mph', 'kph', 'deg', 'degree', 'degrees', 'rad', 'radian', 'radians', 'v', 'volt', 'volts', 'w', 'watt', 'watts',
  'kw', 'kwh', 'hz', 'khz', 'mhz', 'j', 'joule', 'joules', 'n', 'newton', 'newtons', 'pa', 'kpa', 'ohm', 'ohms', 'Ω',
  // money
  'dollar', 'dollars', 'cent', 'cents', 'yuan', 'euro', 'euros', 'usd', 'rmb',
  // Chinese measure words and units
  '个', '米', '厘米', '毫米', '千米', '公里', '度', '元', '岁', '秒', '分钟', '小时', '天', '克', '千克', '平方米', '平方厘米',
];
const UNIT_ALT = [...UNIT_WORDS].sort((a, b) => b.length - a.length).map(escapeRegExp).join('|');
const UNIT_ATOM = `(?:(?:square|sq\\.?|cubic|cu\\.?)\\s+)?(?:${UNIT_ALT})(?:\\s*\\^\\s*\\{?\\s*[23]\\s*\\}?|[²³23])?`;
const TRAILING_UNIT = new RegExp(
  `(?<=[\\d).}\\s])\\s*(?:°\\s*[CF]?|${UNIT_ATOM}(?:\\s*(?:/|per)\\s*${UNIT_ATOM})?)$`,
  'iu',
);
const TRAILING_PERCENT = /(?<=[\d).}\s])\s*(?:%|percent|per cent)$/i;
const LEADING_CURRENCY = /^(?:US\$|\$|€|£|¥|USD|RMB)\s*/i;

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Result of stripping units: the bare text and whether a percent sign was removed. */
export interface Stripped {
  text: string;
  percent: boolean;
}

/**
 * Strips a leading currency sign and trailing units/degree/percent markers (repeatedly, e.g. `45 °` or
 * `3 cm²`). The text should already be normalised by normalizeLatex. Never throws.
 */
export function stripUnits(text: string): Stripped {
  let s = text.trim().replace(LEADING_CURRENCY, '');
  let percent = false;
  for (let i = 0; i < 3; i++) {
    const before = s;
    if (TRAILING_PERCENT.test(s)) {
      percent = true;
      s = s.replace(TRAILING_PERCENT, '');
    }
    s = s.replace(TRAILING_UNIT, '').trim();
    if (s === before) break;
  }
  return { text: s.trim(), percent };
}

const PLAIN_NUMBER = /^([+-])?\s*(\d{1,3}(?:,\d{3})+|\d+|(?=\.\d))(\.\d+)?(?:[eE]([+-]?\d+))?$/;

/**
 * A plain decimal number: sign, digits with optional well-formed thousands separators, decimals, exponent
 * (`-1,234.5`, `.5`, `1e-3`). Returns undefined for anything else (fractions, LaTeX, words). Never throws.
 */
export function parsePlainNumber(text: string): number | undefined {
  const m = PLAIN_NUMBER.exec(text.trim());
  if (!m) return undefined;
  const v = Number(`${m[1] ?? ''}${(m[2] ?? '').replace(/,/g, '')}${m[3] ?? ''}${m[4] !== undefined ? `e${m[4]}` : ''}`);
  return Number.isFinite(v) ? v : undefined;
}

/** Every plain number in running text, in order (thousands-aware: "1,000 and 3" → [1000, 3]). */
export function findNumbers(text: string): number[] {
  const out: number[] = [];
  const re = /(?<![\w.,])-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?(?![\d])/g;
  for (const m of text.matchAll(re)) {
    const v = parsePlainNumber(m[0]);
    if (v !== undefined) out.push(v);
  }
  return out;
}

// Function and constant names kept as words when converting to a math expression.
export const MATH_FUNCTIONS = [
  'sqrt', 'nthRoot', 'sin', 'cos', 'tan', 'cot', 'sec', 'csc', 'asin', 'acos', 'atan', 'sinh', 'cosh', 'tanh',
  'log', 'log10', 'log2', 'exp', 'abs', 'combinations', 'factorial',
] as const;
export const MATH_CONSTANTS = ['pi', 'e'] as const;
const GREEK = [
  'alpha', 'beta', 'gamma', 'delta', 'epsilon', 'zeta', 'eta', 'theta', 'iota', 'kappa', 'lambda', 'mu', 'nu', 'xi',
  'rho', 'sigma', 'tau', 'upsilon', 'phi', 'chi', 'psi', 'omega',
];
const LATEX_FUNCS: Record<string, string> = {
  sin: 'sin', cos: 'cos', tan: 'tan', cot: 'cot', sec: 'sec', csc: 'csc', arcsin: 'asin', arccos: 'acos',
  arctan: 'atan', sinh: 'sinh', cosh: 'cosh', tanh: 'tanh', ln: 'log', log: 'log', exp: 'exp',
};
const KEEP_WORDS = new Set<string>([...MATH_FUNCTIONS, ...MATH_CONSTANTS, ...GREEK, 'Infinity']);

/** Reads one LaTeX argument at `i`: `{…}` (brace-balanced) or a single non-space character. */
function readArg(s: string, i: number): { arg: string; end: number } | undefined {
  let j = i;
  while (s[j] === ' ') j++;
  if (j >= s.length) return undefined;
  if (s[j] === '{') {
    const close = matchingBrace(s, j);
    if (close < 0) return undefined;
    return { arg: s.slice(j + 1, close), end: close + 1 };
  }
  if (s[j] === '\\') {
    const m = /^\\[a-zA-Z]+/.exec(s.slice(j));
    if (m) return { arg: m[0], end: j + m[0].length };
  }
  return { arg: s[j] ?? '', end: j + 1 };
}

/** Rewrites \frac, \sqrt and \binom (recursively) into function syntax; undefined when malformed. */
function rewriteStructures(s: string, depth = 0): string | undefined {
  if (depth > 20) return undefined;
  let out = '';
  let i = 0;
  while (i < s.length) {
    const rest = s.slice(i);
    const cmd = /^\\(frac|sqrt|binom)(?![a-zA-Z])/.exec(rest);
    if (!cmd) {
      out += s[i];
      i++;
      continue;
    }
    let j = i + cmd[0].length;
    if (cmd[1] === 'sqrt') {
      let index: string | undefined;
      while (s[j] === ' ') j++;
      if (s[j] === '[') {
        const close = s.indexOf(']', j);
        if (close < 0) return undefined;
        index = s.slice(j + 1, close);
        j = close + 1;
      }
      const a = readArg(s, j);
      if (!a) return undefined;
      const inner = rewriteStructures(a.arg, depth + 1);
      if (inner === undefined) return undefined;
      if (index !== undefined) {
        const idx = rewriteStructures(index, depth + 1);
        if (idx === undefined) return undefined;
        out += ` nthRoot((${inner}),(${idx})) `;
      } else out += ` sqrt(${inner}) `;
      i = a.end;
      continue;
    }
    const a = readArg(s, j);
    const b = a ? readArg(s, a.end) : undefined;
    if (!a || !b) return undefined;
    const num = rewriteStructures(a.arg, depth + 1);
    const den = rewriteStructures(b.arg, depth + 1);
    if (num === undefined || den === undefined) return undefined;
    if (cmd[1] === 'binom') out += ` combinations((${num}),(${den})) `;
    else {
      // Mixed number: an integer right before \frac{int}{int} means addition (PRM800K convention).
      const mixed = /(?:^|[^\w.)}])(\d+)\s*$/.test(out) && /^\s*\d+\s*$/.test(num) && /^\s*\d+\s*$/.test(den);
      // A minus before the integer applies to the whole mixed number: -1\frac{1}{2} = -1.5.
      const sign = /-\s*\d+\s*$/.test(out) ? '-' : '+';
      out += mixed ? `${sign}((${num})/(${den})) ` : ` ((${num})/(${den})) `;
    }
    i = b.end;
  }
  return out;
}

/**
 * Converts normalised LaTeX / Unicode math into mathjs syntax (`\frac{a}{b}` → `((a)/(b))`, `\sqrt[3]{x}` →
 * `nthRoot((x),(3))`, `^{…}` → `^(…)`, `\pi`/`π` → `pi`, `\ln` → `log`, `x²` → `x^2`, `xy` → `x*y`). Returns
 * undefined when the text is not plain math: leftover LaTeX commands, words of three or more letters that are
 * not function/constant names, relations other than a single `=`, or more than 400 characters. Never throws.
 */
export function toMathExpression(text: string): string | undefined {
  let s = normalizeLatex(text);
  if (s.length === 0 || s.length > 400) return undefined;
  s = s.replace(/π/g, '\\pi ').replace(/∞/g, '\\infty ').replace(/√\s*(\d+|[a-zA-Z]|\{)/g, '\\sqrt $1');
  s = s.replace(/√\s*\(/g, 'sqrt(');
  s = s.replace(/²/g, '^2').replace(/³/g, '^3');
  const structured = rewriteStructures(s);
  if (structured === undefined) return undefined;
  s = structured;
  s = s.replace(/\\(arcsin|arccos|arctan|sinh|cosh|tanh|sin|cos|tan|cot|sec|csc|ln|log|exp)(?![a-zA-Z])/g, (_, f: string) => ` ${LATEX_FUNCS[f] ?? f} `);
  s = s.replace(/\\pi(?![a-zA-Z])/g, ' pi ').replace(/\\infty(?![a-zA-Z])/g, ' Infinity ');
  s = s.replace(/\\(alpha|beta|gamma|delta|epsilon|varepsilon|zeta|eta|theta|vartheta|iota|kappa|lambda|mu|nu|xi|rho|sigma|tau|upsilon|phi|varphi|chi|psi|omega)(?![a-zA-Z])/g, (_, g: string) => ` ${g.replace(/^var/, '')} `);
  s = s.replace(/_\{([a-zA-Z0-9]+)\}/g, '_$1');
  s = s.replace(/\{/g, '(').replace(/\}/g, ')');
  if (/\\/.test(s)) return undefined;
  if (/[<>≤≥≠!]=?|==/.test(s.replace(/(\d|\))\s*!/g, '$1'))) return undefined;
  if ((s.match(/=/g) ?? []).length > 1) return undefined;
  if (/[^\w\s+\-*/^().,=!]/.test(s)) return undefined;
  // Words: keep function/constant names, split two-letter products (xy → x*y), refuse real words.
  let bad = false;
  s = s.replace(/[a-zA-Z]+(?:_[a-zA-Z0-9]+)?/g, (w) => {
    if (KEEP_WORDS.has(w) || /^[a-zA-Z](?:_[a-zA-Z0-9]+)?$/.test(w)) return w;
    if (/^[a-zA-Z]{2}$/.test(w)) return `${w[0]}*${w[1]}`;
    bad = true;
    return w;
  });
  if (bad) return undefined;
  s = s.replace(/\s+/g, ' ').trim();
  return s.length > 0 ? s : undefined;
}

const SMALL_NUMBER_WORDS: Record<string, number> = {
  zero: 0, none: 0, one: 1, two: 2, three: 3, four: 4, five: 5, six: 6, seven: 7, eight: 8, nine: 9, ten: 10,
  eleven: 11, twelve: 12, thirteen: 13, fourteen: 14, fifteen: 15, sixteen: 16, seventeen: 17, eighteen: 18,
  nineteen: 19, dozen: 12,
};
const TENS_WORDS: Record<string, number> = {
  twenty: 20, thirty: 30, forty: 40, fifty: 50, sixty: 60, seventy: 70, eighty: 80, ninety: 90,
};

/** A number word below 100 at words[i] ("seven", "twenty", "twenty one"). */
function parseBelow100(words: string[], i: number): { value: number; used: number } | undefined {
  const w = words[i] ?? '';
  const tens = TENS_WORDS[w];
  if (tens !== undefined) {
    const unit = SMALL_NUMBER_WORDS[words[i + 1] ?? ''];
    return unit !== undefined && unit >= 1 && unit <= 9 ? { value: tens + unit, used: 2 } : { value: tens, used: 1 };
  }
  const small = SMALL_NUMBER_WORDS[w];
  return small === undefined ? undefined : { value: small, used: 1 };
}

/**
 * English number words in running text, in order: "three" → 3, "twenty-one" / "twenty one" → 21,
 * "two hundred and five" → 205, "dozen" → 12, "none"/"zero" → 0 (0–999). Never throws.
 */
export function findNumberWords(text: string): number[] {
  const out: number[] = [];
  const words = text.toLowerCase().match(/[a-z]+/g) ?? [];
  let i = 0;
  while (i < words.length) {
    const a = parseBelow100(words, i);
    if (!a) {
      i++;
      continue;
    }
    let { value, used } = a;
    if (words[i + used] === 'hundred' && value >= 1 && value <= 9) {
      value *= 100;
      used += 1;
      let j = i + used;
      if (words[j] === 'and') j++;
      const b = parseBelow100(words, j);
      if (b && b.value > 0 && words[j] !== 'dozen') {
        value += b.value;
        used = j - i + b.used;
      }
    }
    out.push(value);
    i += used;
  }
  return out;
}
