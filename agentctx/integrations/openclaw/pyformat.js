// Python's text for numbers and values, exactly, as far as the drive block uses it:
// f"{x:.Nf}", f"{x:g}", round(x), str(x), truthiness, str.strip and str.splitlines.
//
// Why not toFixed / toPrecision / Math.round: they round an exact tie up, Python
// rounds it to even. A pressure of 6.25 is "6.2" in Python and "6.3" from toFixed;
// a ratio of 0.625 is round(62.5) == 62 in Python and 63 from Math.round. So the
// digits here come from the double's exact binary value, with BigInt.

const G_PRECISION = 6; // Python's default precision for the "g" format
const G_MIN_EXPONENT = -4; // below this (and at G_PRECISION or above) "g" goes scientific
const MANTISSA_BITS = 52n;
const EXPONENT_BIAS = 1075; // 1023 + 52: the double is mantissa * 2 ** (biased - 1075)
const SUBNORMAL_EXPONENT = -1074;

// str.isspace() in Python (JavaScript's trim differs: it strips U+FEFF, keeps U+001C..1F, U+0085)
const PY_SPACE =
  "[\\t\\n\\v\\f\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
const STRIP = new RegExp(`^${PY_SPACE}+|${PY_SPACE}+$`, "g");
// the line boundaries of str.splitlines()
const LINE_BREAK = /\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]/;

/** The exact value of |x| (finite) as int / 10 ** scale, both exact (BigInt, Number). */
function exactValue(x) {
  const view = new DataView(new ArrayBuffer(8));
  view.setFloat64(0, Math.abs(x));
  const bits = view.getBigUint64(0);
  const biased = Number(bits >> MANTISSA_BITS);
  let mantissa = bits & ((1n << MANTISSA_BITS) - 1n);
  let exponent = SUBNORMAL_EXPONENT;
  if (biased !== 0) {
    mantissa |= 1n << MANTISSA_BITS;
    exponent = biased - EXPONENT_BIAS;
  }
  if (exponent >= 0) return { int: mantissa << BigInt(exponent), scale: 0 };
  // m / 2**k == m * 5**k / 10**k: a finite decimal, exactly
  return { int: mantissa * 5n ** BigInt(-exponent), scale: -exponent };
}

/** int / 10 ** drop, rounded half to even (drop < 0 multiplies). */
function roundOff(int, drop) {
  if (drop <= 0) return int * 10n ** BigInt(-drop);
  const unit = 10n ** BigInt(drop);
  let quotient = int / unit;
  const twice = 2n * (int % unit);
  if (twice > unit || (twice === unit && quotient % 2n === 1n)) quotient += 1n;
  return quotient;
}

function nonFinite(x) {
  if (Number.isNaN(x)) return "nan";
  return Number.isFinite(x) ? null : x > 0 ? "inf" : "-inf";
}

function signOf(x) {
  return x < 0 || Object.is(x, -0) ? "-" : "";
}

function stripZeros(text) {
  return text.includes(".") ? text.replace(/0+$/, "").replace(/\.$/, "") : text;
}

/** f"{x:.{digits}f}" */
export function fixed(x, digits) {
  const special = nonFinite(x);
  if (special !== null) return special;
  const { int, scale } = exactValue(x);
  const text = roundOff(int, scale - digits).toString().padStart(digits + 1, "0");
  const body = digits > 0 ? `${text.slice(0, -digits)}.${text.slice(-digits)}` : text;
  return signOf(x) + body;
}

/** f"{x:g}": six significant digits, trailing zeros dropped, e+NN outside 1e-4 .. 1e6. */
export function general(x) {
  const special = nonFinite(x);
  if (special !== null) return special;
  if (x === 0) return `${signOf(x)}0`;
  const { int, scale } = exactValue(x);
  const length = int.toString().length;
  let exponent = length - 1 - scale;
  let digits = roundOff(int, length - G_PRECISION);
  if (digits.toString().length > G_PRECISION) {
    digits /= 10n; // rounding carried into a new digit: 999999.5 -> 1.00000e+06
    exponent += 1;
  }
  if (exponent >= G_MIN_EXPONENT && exponent < G_PRECISION) {
    return signOf(x) + stripZeros(fixed(Math.abs(x), G_PRECISION - 1 - exponent));
  }
  const text = digits.toString();
  const mantissa = stripZeros(`${text[0]}.${text.slice(1)}`);
  const power = String(Math.abs(exponent)).padStart(2, "0");
  return `${signOf(x)}${mantissa}e${exponent < 0 ? "-" : "+"}${power}`;
}

/** round(x) for a float: the nearest integer, an exact half going to the even one. */
export function roundHalfEven(x) {
  const floor = Math.floor(x);
  const fraction = x - floor; // exact for any double
  if (fraction !== 0.5) return fraction < 0.5 ? floor : floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** float(x) as the block's numbers are read (a JSON number; null and absent are 0). */
export function toFloat(x) {
  const value = Number(x ?? 0);
  return Number.isNaN(value) ? 0 : value;
}

/** str(x) for a value from JSON. Strings (all the daemon sends) are exact; JSON does not
 * say whether 20 was 20 or 20.0, so other numbers are JavaScript's text. */
export function str(x) {
  if (x === null || x === undefined) return "None";
  if (x === true) return "True";
  if (x === false) return "False";
  return String(x);
}

/** bool(x) for a value from JSON: empty strings, lists and objects are false too. */
export function truthy(x) {
  if (Array.isArray(x)) return x.length > 0;
  if (x !== null && typeof x === "object") return Object.keys(x).length > 0;
  return Boolean(x);
}

/** len(text): code points, not UTF-16 units (every marker in the block is an emoji). */
export function charCount(text) {
  let count = 0;
  for (const _ of text) count += 1;
  return count;
}

/** text.strip() */
export function strip(text) {
  return text.replace(STRIP, "");
}

/** text.splitlines()[0] for a non-empty text. */
export function firstLine(text) {
  return text.split(LINE_BREAK)[0];
}
