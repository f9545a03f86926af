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

/** The characters of connection ids (base64 and base64url, with padding), in byte order. */
const ALPHABET = '+-/0123456789=ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz';
const BASE = ALPHABET.length;
/** Digits of a boundary: 67^8 positions, within a double's exact integers. */
const DIGITS = 8;

/** Rank of a character: how many alphabet characters sort before it (monotone in byte order). */
function rank(code: number): number {
  let lo = 0;
  let hi = BASE;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ALPHABET.charCodeAt(mid) < code) lo = mid + 1;
    else hi = mid;
  }
  // A character of the alphabet is its own digit; one between two of them sorts just after the lower.
  return lo < BASE && ALPHABET.charCodeAt(lo) === code ? lo : Math.max(0, lo - 0.5);
}

/** Where a key sits in [0, 1): monotone (never decreasing) in the keys' byte order. */
export function keyPosition(key: string): number {
  let position = 0;
  let scale = 1;
  for (let i = 0; i < Math.min(DIGITS, key.length); i++) {
    scale /= BASE;
    position += rank(key.charCodeAt(i)) * scale;
  }
  return Math.min(position, 1);
}

/** The boundary string at a position in (0, 1): `DIGITS` characters, increasing with the position. */
export function boundaryAt(position: number): string {
  let rest = Math.floor(Math.min(Math.max(position, 0), 1 - 1e-15) * BASE ** DIGITS);
  const out: string[] = [];
  for (let i = 0; i < DIGITS; i++) {
    out.unshift(ALPHABET[rest % BASE] as string);
    rest = Math.floor(rest / BASE);
  }
  return out.join('');
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
