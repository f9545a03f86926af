import { cpus, totalmem } from 'node:os';

/** One measurement's results: what is printed, what goes to BENCHMARKS.md, and any broken budget. */
export interface Section {
  readonly title: string;
  /** Markdown body (tables and notes) for BENCHMARKS.md; the console gets the same text. */
  readonly markdown: string;
  /** Budgets that broke: a non-empty list fails `npm run bench`. */
  readonly failures: readonly string[];
}

export function median(values: readonly number[]): number {
  return percentile(values, 50);
}

/** Nearest-rank percentile (p in 0..100) of unsorted values. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** A markdown table; cells are printed as given. */
export function table(header: readonly string[], rows: readonly (readonly (string | number)[])[]): string {
  const line = (cells: readonly (string | number)[]) => `| ${cells.map(String).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** A number with a sensible count of significant digits for a table. */
export function fmt(n: number, digits = 3): string {
  // NaN: no figure (say, a function that an older build compared against did not have).
  if (Number.isNaN(n)) return '—';
  if (!Number.isFinite(n)) return String(n);
  if (n === 0) return '0';
  const abs = Math.abs(n);
  if (abs >= 1000) return Math.round(n).toLocaleString('en-US');
  return Number(n.toPrecision(digits)).toString();
}

/**
 * The mean and the maximum of the figures that exist: a function new since an older build has
 * no figure there (NaN), and that build's mean and maximum leave it out.
 */
export function meanOfKnown(xs: readonly number[]): number {
  const known = xs.filter(Number.isFinite);
  return known.reduce((a, b) => a + b, 0) / Math.max(1, known.length);
}

export function maxOfKnown(xs: readonly number[]): number {
  return Math.max(...xs.filter(Number.isFinite));
}

export function ratio(a: number, b: number): string {
  return Number.isNaN(a / b) ? '—' : `${fmt(a / b, 3)}×`;
}

export const usd = (n: number): string =>
  n >= 100 ? `$${Math.round(n).toLocaleString('en-US')}` : `$${n.toPrecision(3)}`;

/** Milliseconds since an arbitrary origin, sub-millisecond. */
export const now = (): number => performance.now();

export async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const start = now();
  const value = await run();
  return { ms: now() - start, value };
}

export function machine(): { cpu: string; cores: number; memoryGb: number; node: string; date: string } {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    memoryGb: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    date: new Date().toISOString().slice(0, 10),
  };
}

/** Runs `run` over `items`, at most `limit` at a time. */
export async function mapLimit<T, R>(
  items: readonly T[],
  limit: number,
  run: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await run(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

/** Progress on stderr, so stdout holds only the tables. */
export function progress(message: string): void {
  process.stderr.write(`[bench] ${message}\n`);
}
