import { describe, expect, it } from 'vitest';

import {
  extractBoxed,
  findNumbers,
  findNumberWords,
  normalizeLatex,
  parsePlainNumber,
  stripUnits,
  toMathExpression,
} from '../../src/rewards/numbers.js';
import { evaluateConstant, mathEquivalent, numbersClose } from '../../src/rewards/symbolic.js';
import { numericValues } from '../../src/rewards/values.js';

describe('plain numbers', () => {
  it('accepts well-formed thousands separators only', () => {
    expect(parsePlainNumber('1,000')).toBe(1000);
    expect(parsePlainNumber('-1,234,567.5')).toBe(-1234567.5);
    expect(parsePlainNumber('1,00')).toBeUndefined();
    expect(parsePlainNumber('10,00,000')).toBeUndefined();
    expect(parsePlainNumber('.5')).toBe(0.5);
    expect(parsePlainNumber('1e-3')).toBe(0.001);
    expect(parsePlainNumber('abc')).toBeUndefined();
    expect(parsePlainNumber('1e999')).toBeUndefined();
  });

  it('reads LaTeX digit grouping', () => {
    expect(numericValues('1{,}000')).toEqual([1000]);
    expect(numericValues('1\\,000')).toEqual([1000]);
  });

  it('finds numbers in running text', () => {
    expect(findNumbers('1,000 and 3, then -2.5 and x3 and 3cm')).toEqual([1000, 3, -2.5, 3]);
  });

  it('reads English number words', () => {
    expect(findNumberWords('twenty-one cats, two hundred and five dogs, none left, a dozen eggs, seven')).toEqual([
      21, 205, 0, 12, 7,
    ]);
    expect(findNumberWords('someone and anyone')).toEqual([]);
  });
});

describe('LaTeX normalisation, units and boxes', () => {
  it('extracts the last brace-balanced \\boxed{}', () => {
    expect(extractBoxed('\\boxed{1} then \\boxed{\\frac{1}{2}}')).toBe('\\frac{1}{2}');
    expect(extractBoxed('\\boxed 7')).toBe('7');
    expect(extractBoxed('\\fbox{x}')).toBe('x');
    expect(extractBoxed('\\boxed{unclosed')).toBeUndefined();
    expect(extractBoxed('none')).toBeUndefined();
  });

  it('normalises delimiters, text, degrees, operators and minus signs', () => {
    expect(normalizeLatex('$\\text{5 } \\mathrm{cm}$')).toBe('5 cm');
    expect(normalizeLatex('45^{\\circ}')).toBe('45°');
    expect(normalizeLatex('\\left( 1 \\right)')).toBe('( 1 )');
    expect(normalizeLatex('2 \\times 3 \\cdot 4 \\div 5')).toBe('2 * 3 * 4 / 5');
    expect(normalizeLatex('−3.')).toBe('-3');
    expect(normalizeLatex('\\dfrac{1}{2}')).toBe('\\frac{1}{2}');
  });

  it('strips trailing units, degree and percent signs and a leading currency', () => {
    for (const [t, bare] of [
      ['3 cm', '3'],
      ['3cm^2', '3'],
      ['5 km/h', '5'],
      ['45°', '45'],
      ['20 °C', '20'],
      ['$5', '5'],
      ['7 square meters', '7'],
      ['12 个', '12'],
    ] as const) {
      expect(stripUnits(normalizeLatex(t)).text, t).toBe(bare);
    }
    expect(stripUnits('50%')).toEqual({ text: '50', percent: true });
    expect(stripUnits('3 apples').text).toBe('3 apples');
    expect(stripUnits('2x').text).toBe('2x');
  });

  it('reads numbers with units, degrees, percents, fractions and LaTeX', () => {
    expect(numericValues('\\frac{1}{2}')).toEqual([0.5]);
    expect(numericValues('\\dfrac12')).toEqual([0.5]);
    expect(numericValues('-\\frac{3}{4}')).toEqual([-0.75]);
    expect(numericValues('1\\frac{1}{2}')).toEqual([1.5]);
    expect(numericValues('-1\\frac{1}{2}')).toEqual([-1.5]);
    expect(numericValues('\\sqrt{16}')).toEqual([4]);
    expect(numericValues('\\sqrt[3]{27}')[0]).toBeCloseTo(3, 12);
    expect(numericValues('2\\pi')[0]).toBeCloseTo(2 * Math.PI, 12);
    expect(numericValues('1.5 \\times 10^{3}')).toEqual([1500]);
    expect(numericValues('x = 5 cm')).toEqual([5]);
    expect(numericValues('50%')).toEqual([50, 0.5]);
    expect(numericValues('3 apples')).toEqual([]);
    expect(numericValues('')).toEqual([]);
  });
});

describe('symbolic equivalence (mathjs, evaluated at fixed points)', () => {
  const yes: Array<[string, string]> = [
    ['2x+2', '2(x+1)'],
    ['\\frac{x^2-1}{x-1}', 'x+1'],
    ['(x+1)^2', 'x^2+2x+1'],
    ['x(x+1)', 'x^2+x'],
    ['xy', 'yx'],
    ['y = 2x + 1', '2x+1'],
    ['2y = 4x', 'y = 2x'],
    ['\\sqrt{8}', '2\\sqrt{2}'],
    ['\\frac{\\sqrt{3}}{2}', '\\sqrt{3}/2'],
    ['\\sin(x)^2 + \\cos(x)^2', '1'],
    ['x²', 'x^2'],
    ['\\frac{\\pi}{3}', '\\pi/3'],
  ];
  const no: Array<[string, string]> = [
    ['2x+2', '2(x+2)'],
    ['x^2', 'x^3'],
    ['x+1', 'y+1'],
    ['y = 2x', 'y = 3x'],
    ['red', 'der'],
    ['\\sqrt{2}', '1.414'],
  ];
  it.each(yes)('%s ≡ %s', (a, b) => {
    expect(mathEquivalent(a, b)).toBe(true);
    expect(mathEquivalent(b, a)).toBe(true);
  });
  it.each(no)('%s ≢ %s', (a, b) => {
    expect(mathEquivalent(a, b)).toBe(false);
    expect(mathEquivalent(b, a)).toBe(false);
  });

  it('refuses words, units, matrices and unknown functions instead of evaluating them', () => {
    expect(toMathExpression('red car')).toBeUndefined();
    expect(evaluateConstant('ones(100000, 100000)')).toBeUndefined();
    expect(evaluateConstant('[1, 2]')).toBeUndefined();
    expect(evaluateConstant('3 cm')).toBeUndefined();
    expect(evaluateConstant('a = 1; b')).toBeUndefined();
    expect(evaluateConstant('x < 3')).toBeUndefined();
    expect(evaluateConstant('1'.repeat(500))).toBeUndefined();
  });

  it('compares with a relative tolerance and an absolute floor', () => {
    expect(numbersClose(1, 1 + 1e-7)).toBe(true);
    expect(numbersClose(1, 1 + 1e-5)).toBe(false);
    expect(numbersClose(0, 1e-10)).toBe(true);
    expect(numbersClose(Infinity, Infinity)).toBe(true);
    expect(numbersClose(NaN, NaN)).toBe(false);
    expect(numbersClose(3.14, Math.PI, { relTol: 1e-3, absTol: 0 })).toBe(true);
  });
});
