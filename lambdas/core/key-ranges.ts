/**
 * Ranges of a room partition's sort keys (connection ids), so that parallel workers can each
 * Query one range (`sk BETWEEN`) and no Query reads the whole room. A range is half-open:
 * `from` inclusive, `to` exclusive, either end open when absent. Boundaries are short strings
 * over the alphabet of connection ids (base64 and base64url), placed by their position in that
 * key space; connection ids look random, so equal key-space parts hold about equal shares of
 * a room (and a part that holds more is split again by the worker that finds it full).
 */
export interface KeyRange {
  readonly from?: string | undefined;
  readonly to?: string | undefined;
}

/**
 * The characters of connection ids in byte order, with their weights: each of base64 (`+`, `/`)
 * and base64url (`-`, `_`) uses 64 of them, so the four that only one uses weigh half, and `=`
 * (padding, never first) nothing. Equal weights then hold about equal shares of either kind.
 */
const ALPHABET = '+-/0123456789=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
const WEIGHTS: number[] = [...ALPHABET].map((c) => ('+-/_'.includes(c) ? 0.5 : c === '=' ? 0 : 1));
const TOTAL = WEIGHTS.reduce((a, b) => a + b, 0);
/** Where each character's share of the key space starts. */
const STARTS = WEIGHTS.map((_, i) => WEIGHTS.slice(0, i).reduce((a, b) => a + b, 0));
/** Characters of a boundary: 64^8 positions, finer than any room. */
const DIGITS = 8;

/** A character's share of the key space, [start, start + weight) out of TOTAL; others sit at the start of the next. */
function shareOf(code: number): { start: number; weight: number } {
  let i = 0;
  while (i < ALPHABET.length && ALPHABET.charCodeAt(i) < code) i++;
  if (i < ALPHABET.length && ALPHABET.charCodeAt(i) === code) {
    return { start: STARTS[i] as number, weight: WEIGHTS[i] as number };
  }
  return { start: i < ALPHABET.length ? (STARTS[i] as number) : TOTAL, weight: 0 };
}

/** Where a key sits in [0, 1]: monotone (never decreasing) in the keys' byte order. */
export function keyPosition(key: string): number {
  let position = 0;
  let scale = 1;
  for (let i = 0; i < Math.min(DIGITS, key.length) && scale > 0; i++) {
    const { start, weight } = shareOf(key.charCodeAt(i));
    position += (start / TOTAL) * scale;
    scale *= weight / TOTAL;
  }
  return Math.min(position, 1);
}

/** The boundary string at a position in [0, 1): `DIGITS` characters, never decreasing with the position. */
export function boundaryAt(position: number): string {
  let rest = Math.min(Math.max(position, 0), 1 - 1e-12) * TOTAL;
  let out = '';
  for (let d = 0; d < DIGITS; d++) {
    let i = 0;
    while (
      i < ALPHABET.length - 1 &&
      ((WEIGHTS[i] as number) === 0 || rest >= (STARTS[i] as number) + (WEIGHTS[i] as number))
    )
      i++;
    out += ALPHABET[i];
    const weight = WEIGHTS[i] as number;
    rest = Math.min(Math.max((rest - (STARTS[i] as number)) / weight, 0), 1 - 1e-12) * TOTAL;
  }
  return out;
}

/**
 * Splits a range into at most `parts` ranges of equal key space, disjoint and covering it
 * exactly. Fewer come back where the key space is too narrow to cut (one: not splittable).
 *
 * @example
 * splitRange({}, 2) // [{ to: 'V+++++++' }, { from: 'V+++++++' }] (about half of random ids each)
 */
export function splitRange(range: KeyRange, parts: number): KeyRange[] {
  const lo = range.from === undefined ? 0 : keyPosition(range.from);
  const hi = range.to === undefined ? 1 : keyPosition(range.to);
  const cuts: string[] = [];
  for (let j = 1; j < parts; j++) {
    const cut = boundaryAt(lo + ((hi - lo) * j) / parts);
    const previous = cuts[cuts.length - 1] ?? range.from;
    // Strictly inside the range and after the previous cut, or the ranges would overlap or be empty.
    if (previous !== undefined && cut <= previous) continue;
    if (range.to !== undefined && cut >= range.to) continue;
    cuts.push(cut);
  }
  const bounds = [range.from, ...cuts, range.to];
  return bounds.slice(0, -1).map((from, i) => ({ from, to: bounds[i + 1] }));
}

/** Whether a key belongs to a range. */
export function inRange(key: string, range: KeyRange): boolean {
  return (range.from === undefined || key >= range.from) && (range.to === undefined || key < range.to);
}

/** The share of the key space a range covers (of random ids: the share of the room it holds). */
export function rangeShare(range: KeyRange): number {
  const lo = range.from === undefined ? 0 : keyPosition(range.from);
  const hi = range.to === undefined ? 1 : keyPosition(range.to);
  return Math.max(hi - lo, 0);
}
