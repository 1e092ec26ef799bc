/**
 * Expression evaluation and symbolic equivalence with mathjs.
 *
 * Peers: Math-Verify `verify(gold, target)` (sympy: numeric with 6-decimal rounding, then symbolic
 * simplification; R1-V/VLM-R1 call it as verify(parse(model), parse(solution)), i.e. with the arguments swapped)
 * and MathRuler's `grade_answer` (`sympy.simplify(gt - given) == 0`, only with at most 2 unknown letters) —
 * peers.md §b.0.
 *
 * Our rule (deliberate differences):
 * - Equivalence is symmetric (the argument-order bug cannot occur) and is decided by evaluation: two expressions
 *   are equivalent when they agree (relative tolerance, default 1e-6, absolute floor 1e-9) at 8 fixed
 *   pseudo-random points for the union of their variables, with at least 3 points where both are real and
 *   finite. By the Schwartz–Zippel argument a false positive needs an identity that happens to hold at every one
 *   of those points; sympy.simplify instead misses true identities it cannot simplify.
 * - Equations: `y = 2x+2` vs `2(x+1)` compares the right side when the left side is a lone variable absent from
 *   the right; two equations are equivalent when lhs−rhs of one is a non-zero constant multiple of the other's.
 * - Only plain math is evaluated: numbers, single-letter variables (or Greek names, `x_1`), `pi`, `e`, + − * / ^,
 *   factorial and a fixed list of functions (MATH_FUNCTIONS). Anything else (matrices, units, assignments, other
 *   function names, real words) is "not an expression", so no completion can make mathjs allocate or loop.
 */
import { all, create, type MathNode } from 'mathjs';

import { MATH_CONSTANTS, MATH_FUNCTIONS, toMathExpression } from './numbers.js';

// mathjs types `all` as possibly undefined; it is always defined at runtime.
const math = create(all as NonNullable<typeof all>, { number: 'number' });

const ALLOWED_FUNCTIONS = new Set<string>(MATH_FUNCTIONS);
const CONSTANTS = new Set<string>([...MATH_CONSTANTS, 'Infinity']);
const ALLOWED_OPERATORS = new Set(['add', 'subtract', 'multiply', 'divide', 'pow', 'unaryMinus', 'unaryPlus', 'factorial']);
const VARIABLE = /^(?:[a-zA-Z](?:_[a-zA-Z0-9]+)?|alpha|beta|gamma|delta|epsilon|zeta|eta|theta|iota|kappa|lambda|mu|nu|xi|rho|sigma|tau|upsilon|phi|chi|psi|omega)$/;

/** Tolerances for numeric comparison: equal when |a−b| ≤ max(absTol, relTol·max(|a|,|b|)). */
export interface Tolerance {
  relTol: number;
  absTol: number;
}
export const DEFAULT_TOLERANCE: Tolerance = { relTol: 1e-6, absTol: 1e-9 };

/** Numeric closeness (equal infinities are close; NaN never is). */
export function numbersClose(a: number, b: number, tol: Tolerance = DEFAULT_TOLERANCE): boolean {
  if (a === b) return true;
  if (!Number.isFinite(a) || !Number.isFinite(b)) return false;
  return Math.abs(a - b) <= Math.max(tol.absTol, tol.relTol * Math.max(Math.abs(a), Math.abs(b)));
}

interface Compiled {
  evaluate(scope: Record<string, number>): number | undefined;
  variables: Set<string>;
}

/** A parsed math answer: an expression, or an equation lhs = rhs. */
export interface ParsedMath {
  kind: 'expression' | 'equation';
  /** The expression, or lhs − rhs for an equation. */
  main: Compiled;
  /** For an equation whose left side is a lone variable not used on the right: that variable and the rhs. */
  solvedFor?: { variable: string; rhs: Compiled };
}

type AnyNode = MathNode & {
  type: string;
  name?: string;
  value?: unknown;
  fn?: unknown;
  args?: MathNode[];
  content?: MathNode;
};

/** Rewrite `x(x+1)` (a variable used as a function) into `x*(x+1)`. */
function fixImplicitCalls(node: MathNode): MathNode {
  return node.transform((n) => {
    const a = n as AnyNode;
    if (a.type === 'FunctionNode') {
      const fn = a.fn as AnyNode | undefined;
      const name = fn?.type === 'SymbolNode' ? fn.name : undefined;
      const args = a.args ?? [];
      if (name !== undefined && !ALLOWED_FUNCTIONS.has(name) && VARIABLE.test(name) && args.length === 1 && args[0]) {
        return new math.OperatorNode('*', 'multiply', [new math.SymbolNode(name), fixImplicitCalls(args[0])]);
      }
    }
    return n;
  });
}

/** Whether the tree only holds plain math; collects variable names. */
function checkTree(node: MathNode, vars: Set<string>, depth = 0): boolean {
  if (depth > 200) return false;
  const n = node as AnyNode;
  switch (n.type) {
    case 'ConstantNode':
      return typeof n.value === 'number';
    case 'SymbolNode': {
      const name = n.name ?? '';
      if (CONSTANTS.has(name)) return true;
      if (!VARIABLE.test(name)) return false;
      vars.add(name);
      return true;
    }
    case 'ParenthesisNode':
      return n.content !== undefined && checkTree(n.content, vars, depth + 1);
    case 'OperatorNode':
      return ALLOWED_OPERATORS.has(String(n.fn)) && (n.args ?? []).every((c) => checkTree(c, vars, depth + 1));
    case 'FunctionNode': {
      const fn = n.fn as AnyNode | undefined;
      if (fn?.type !== 'SymbolNode' || !ALLOWED_FUNCTIONS.has(fn.name ?? '')) return false;
      return (n.args ?? []).every((c) => checkTree(c, vars, depth + 1));
    }
    default:
      return false;
  }
}

function compileExpression(expr: string): Compiled | undefined {
  let node: MathNode;
  try {
    node = fixImplicitCalls(math.parse(expr));
  } catch {
    return undefined;
  }
  const variables = new Set<string>();
  if (!checkTree(node, variables)) return undefined;
  let code: { evaluate(scope?: object): unknown };
  try {
    code = node.compile();
  } catch {
    return undefined;
  }
  return {
    variables,
    evaluate(scope) {
      try {
        const v = code.evaluate({ ...scope });
        return typeof v === 'number' && !Number.isNaN(v) ? v : undefined;
      } catch {
        return undefined;
      }
    },
  };
}

/**
 * Parses an answer (LaTeX, Unicode or ASCII math) into something evaluable, or undefined when it is not plain
 * math (see toMathExpression and the top of this file). Never throws.
 */
export function parseMath(text: string): ParsedMath | undefined {
  const expr = toMathExpression(text);
  if (expr === undefined) return undefined;
  const parts = expr.split('=');
  if (parts.length === 1) {
    const main = compileExpression(expr);
    return main ? { kind: 'expression', main } : undefined;
  }
  const [lhsText = '', rhsText = ''] = parts;
  if (!lhsText.trim() || !rhsText.trim()) return undefined;
  const lhs = compileExpression(lhsText);
  const rhs = compileExpression(rhsText);
  const main = compileExpression(`(${lhsText}) - (${rhsText})`);
  if (!lhs || !rhs || !main) return undefined;
  const lone = lhsText.trim();
  const result: ParsedMath = { kind: 'equation', main };
  if (VARIABLE.test(lone) && !CONSTANTS.has(lone) && !rhs.variables.has(lone)) result.solvedFor = { variable: lone, rhs };
  return result;
}

/**
 * The value of a constant expression (`\frac{\sqrt{3}}{2}`, `2\pi`, `1.5 \times 10^{3}`, `x = 5` → 5), or
 * undefined when it has free variables or is not plain math. Never throws.
 */
export function evaluateConstant(text: string): number | undefined {
  const p = parseMath(text);
  if (!p) return undefined;
  const c = p.kind === 'expression' ? p.main : p.solvedFor?.rhs;
  if (!c || c.variables.size > 0) return undefined;
  return c.evaluate({});
}

// Fixed evaluation points (irrational-looking, positive and negative), so results are reproducible.
const POINTS = [0.5772156649, 1.2599210499, 2.3025850930, 0.7071067812, 1.6180339887, 2.7182818285, -0.3678794412, -1.4142135624, 3.1415926536, 0.3183098862, 1.7320508076];
const NUM_POINTS = 8;
const MIN_VALID_POINTS = 3;

function scopeAt(vars: string[], p: number): Record<string, number> {
  const scope: Record<string, number> = {};
  vars.forEach((v, k) => {
    scope[v] = POINTS[(p * 7 + k * 3) % POINTS.length] ?? 1;
  });
  return scope;
}

/** Compares one pair of values; `ratio` carries the constant of proportionality between points. */
function pairAgrees(a: number, b: number, tol: Tolerance, state: { ratio?: number } | undefined): boolean {
  if (!state) return numbersClose(a, b, tol);
  if (state.ratio === undefined) {
    if (numbersClose(b, 0, tol)) return numbersClose(a, 0, tol);
    state.ratio = a / b;
    return !numbersClose(state.ratio, 0, tol);
  }
  return numbersClose(a, state.ratio * b, tol);
}

/** Whether f ≡ g (or f ≡ c·g for one constant c ≠ 0 when `proportional`), at the fixed points. */
function agree(f: Compiled, g: Compiled, tol: Tolerance, proportional: boolean): boolean {
  const vars = [...new Set([...f.variables, ...g.variables])];
  const state = proportional ? {} : undefined;
  if (vars.length === 0) {
    const a = f.evaluate({});
    const b = g.evaluate({});
    return a !== undefined && b !== undefined && pairAgrees(a, b, tol, state);
  }
  let valid = 0;
  for (let p = 0; p < NUM_POINTS; p++) {
    const scope = scopeAt(vars, p);
    const a = f.evaluate(scope);
    const b = g.evaluate(scope);
    if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b)) continue;
    if (!pairAgrees(a, b, tol, state)) return false;
    valid++;
  }
  return valid >= MIN_VALID_POINTS;
}

/**
 * Symmetric mathematical equivalence of two answers (see the rule at the top of this file):
 * `2x+2` ≡ `2(x+1)`, `\frac{x^2-1}{x-1}` ≡ `x+1`, `y = 2x` ≡ `2x`, `2y = 4x` ≡ `y = 2x`. Never throws.
 */
export function mathEquivalent(a: string, b: string, tol: Tolerance = DEFAULT_TOLERANCE): boolean {
  const pa = parseMath(a);
  const pb = parseMath(b);
  if (!pa || !pb) return false;
  if (pa.kind === 'expression' && pb.kind === 'expression') return agree(pa.main, pb.main, tol, false);
  if (pa.kind === 'equation' && pb.kind === 'equation') {
    if (pa.solvedFor && pb.solvedFor && pa.solvedFor.variable === pb.solvedFor.variable)
      return agree(pa.solvedFor.rhs, pb.solvedFor.rhs, tol, false);
    return agree(pa.main, pb.main, tol, true);
  }
  const eq = pa.kind === 'equation' ? pa : pb;
  const ex = pa.kind === 'equation' ? pb : pa;
  return eq.solvedFor !== undefined && agree(eq.solvedFor.rhs, ex.main, tol, false);
}
