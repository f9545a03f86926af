import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import {
  BEFORE,
  type Bundle,
  bundle,
  checkStackOptions,
  extract,
  hasArgon2,
  heaviest,
  OUT,
  srcOf,
  type Variant,
} from './cold-start-bundle.ts';
import { type DbCallCost, dbCallCostMarkdown, measureDbCallCost } from './cold-start-db-cpu.ts';
import { type ChildRun, type ColdStartWorld, runInChild, startColdStartWorld } from './cold-start-world.ts';
import {
  fmt,
  maxOfKnown as max,
  meanOfKnown,
  median,
  progress,
  ratio,
  type Section,
  table,
} from './support.ts';

const EMPTY_HANDLER = 'export const handler = async () => ({ statusCode: 200 });\n';
/** The size cap test/infra/bundle.test.ts holds every bundle to. */
export const BUNDLE_CAP_KB = 200;

export interface ColdStartRow {
  readonly name: string;
  readonly oursKb: number;
  /** At `BEFORE[0]`: the SDK's DynamoDBClient. */
  readonly beforeKb: number;
  /** At `BEFORE[1]`: the first measured bundles. */
  readonly firstKb: number;
  readonly oursMs: number;
  readonly beforeMs: number;
  readonly firstMs: number;
  readonly oursWallMs: number;
  readonly beforeWallMs: number;
  readonly firstWallMs: number;
  readonly argon2: boolean;
  readonly heaviest: string;
  readonly outcome: string;
}

export interface ColdStartResult {
  readonly rows: readonly ColdStartRow[];
  readonly baselineMs: number;
  /** Import + one event of an empty handler (`export const handler = async () => ...`). */
  readonly emptyMs: number;
  readonly argon2ImportMs: number;
  /** CPU per DynamoDB call, the functions' client beside the SDK's. */
  readonly dbCalls: readonly DbCallCost[];
  readonly section: Section;
}

/**
 * Measurement 4: every function of the manifest bundled as the stack bundles it and as it was at
 * each commit of `BEFORE`, then `runs` fresh `node` processes each that import the bundle and
 * handle one event, against dynalite and stand-ins for Secrets Manager and `@connections`.
 */
export async function measureColdStarts(runs = 5): Promise<ColdStartResult> {
  const drift = checkStackOptions();
  mkdirSync(OUT, { recursive: true });
  const world = await startColdStartWorld();
  try {
    const scale = await measureNodeBaseline(world, runs);
    const extracted = BEFORE.filter(extract);
    const rows: ColdStartRow[] = [];
    const crashes: string[] = [];
    for (const spec of FUNCTIONS) {
      const row = await measureFunction(world, spec, extracted, runs, crashes);
      rows.push(row);
      progress(
        `cold start: ${spec.name} ${fmt(row.oursMs)} ms vs ${fmt(row.beforeMs)} ms with the SDK client`,
      );
    }
    const missing = BEFORE.filter((v) => !extracted.includes(v)).map((v) => v.ref);
    const dbCalls = await measureDbCallCost();
    return {
      rows,
      baselineMs: scale.baselineMs,
      emptyMs: scale.emptyMs,
      argon2ImportMs: scale.argon2Ms,
      dbCalls,
      section: coldStartSection(rows, dbCalls, { ...scale, runs, drift, crashes, missing }),
    };
  } finally {
    await world.close();
  }
}

/** Node itself, and the argon2 native module alone, for scale: medians of `runs` processes. */
async function measureNodeBaseline(
  world: ColdStartWorld,
  runs: number,
): Promise<{ baselineMs: number; emptyMs: number; argon2Ms: number }> {
  const empty = join(OUT, 'empty.mjs');
  writeFileSync(empty, EMPTY_HANDLER);
  const argon2Probe = join(OUT, 'argon2.mjs');
  writeFileSync(
    argon2Probe,
    "import '@node-rs/argon2';\nexport const handler = async () => ({ statusCode: 200 });\n",
  );
  const eventFile = join(OUT, 'event.json');
  writeFileSync(eventFile, '{}');
  const baseline: number[] = [];
  const emptyMs: number[] = [];
  const argon2: number[] = [];
  for (let i = 0; i < runs; i++) {
    const e = await runInChild(empty, eventFile, world.baseEnv);
    baseline.push(e.wallMs);
    emptyMs.push(e.importMs + e.handleMs);
    argon2.push((await runInChild(argon2Probe, eventFile, world.baseEnv)).importMs);
  }
  return { baselineMs: median(baseline), emptyMs: median(emptyMs), argon2Ms: median(argon2) };
}

interface Target {
  readonly key: 'ours' | Variant['key'];
  readonly bundle: Bundle;
}

/** One function: bundled as ours and as each variant that has it, then timed in alternation. */
async function measureFunction(
  world: ColdStartWorld,
  spec: FunctionSpec,
  extracted: readonly Variant[],
  runs: number,
  crashes: string[],
): Promise<ColdStartRow> {
  const variants = extracted.filter((v) => existsSync(join(srcOf(v), 'lambdas', `${spec.name}.ts`)));
  const [ours, ...befores] = await Promise.all([
    bundle(spec, undefined),
    ...variants.map((v) => bundle(spec, v)),
  ]);
  if (!ours) throw new Error('no bundle');
  const targets: Target[] = [
    { key: 'ours' as const, bundle: ours },
    ...variants.map((v, i) => ({ key: v.key, bundle: befores[i] as Bundle })),
  ];
  const env = await startingEnv(world, spec, ours, crashes);
  const samples: Record<string, ChildRun[]> = { ours: [], sdk: [], first: [] };
  // Alternating, so that drift on a noisy machine hits all alike.
  for (let i = 0; i < runs; i++) {
    for (const t of targets) {
      const file = await world.eventFileFor(spec, join(OUT, `${spec.name}-${t.key}-${i}.json`));
      samples[t.key]?.push(await runInChild(t.bundle.file, file, env));
    }
  }
  return coldStartRow(spec, ours, targets, samples);
}

/**
 * First with exactly the stack's environment: a function that cannot start is the worst cold
 * start, noted in `crashes`; one that needs no keys is then timed with the public keys added.
 */
async function startingEnv(
  world: ColdStartWorld,
  spec: FunctionSpec,
  ours: Bundle,
  crashes: string[],
): Promise<NodeJS.ProcessEnv> {
  const env = world.envFor(spec);
  try {
    await runInChild(ours.file, await world.eventFileFor(spec, join(OUT, `${spec.name}-probe.json`)), env);
    return env;
  } catch (err) {
    const stderr = String((err as { stderr?: string }).stderr ?? err);
    const message = /^\w*Error: .*$/m.exec(stderr)?.[0] ?? stderr.split('\n')[0];
    crashes.push(`${spec.name} fails its cold start with the stack's environment: ${message}`);
    if (spec.keys !== 'none') throw err;
    return world.envFor(spec, true);
  }
}

/** Medians of the samples of each target, and the bundle's sizes. */
function coldStartRow(
  spec: FunctionSpec,
  ours: Bundle,
  targets: readonly Target[],
  samples: Record<string, ChildRun[]>,
): ColdStartRow {
  const total = (c: ChildRun) => c.importMs + c.handleMs;
  const of = (key: string) => samples[key] ?? [];
  const ms = (key: string) => (of(key).length > 0 ? median(of(key).map(total)) : Number.NaN);
  const wall = (key: string) => (of(key).length > 0 ? median(of(key).map((c) => c.wallMs)) : Number.NaN);
  const kb = (key: string) => {
    const t = targets.find((x) => x.key === key);
    return t ? t.bundle.bytes / 1024 : Number.NaN;
  };
  const outcome = [...new Set(Object.values(samples).flatMap((xs) => xs.map((c) => String(c.outcome))))].join(
    '/',
  );
  return {
    name: spec.name,
    oursKb: kb('ours'),
    beforeKb: kb('sdk'),
    firstKb: kb('first'),
    oursMs: ms('ours'),
    beforeMs: ms('sdk'),
    firstMs: ms('first'),
    oursWallMs: wall('ours'),
    beforeWallMs: wall('sdk'),
    firstWallMs: wall('first'),
    argon2: hasArgon2(ours.metafile),
    heaviest: heaviest(ours.metafile),
    outcome,
  };
}

interface SectionFigures {
  readonly baselineMs: number;
  readonly emptyMs: number;
  readonly argon2Ms: number;
  readonly runs: number;
  readonly drift: readonly string[];
  readonly crashes: readonly string[];
  readonly missing: readonly string[];
}

function coldStartSection(
  rows: readonly ColdStartRow[],
  dbCalls: readonly DbCallCost[],
  m: SectionFigures,
): Section {
  const oversize = rows
    .filter((r) => r.oursKb > BUNDLE_CAP_KB)
    .map((r) => `${r.name} is ${fmt(r.oursKb)} KB, over the ${BUNDLE_CAP_KB} KB cap`);
  const markdown = [
    coldStartTable(rows, m),
    '',
    averagesNote(rows, m.emptyMs),
    '',
    methodNote(m),
    '',
    dbCallCostMarkdown(dbCalls),
    ...warnings(m),
  ].join('\n');
  return { title: 'Cold start per Lambda bundle', markdown, failures: [...m.crashes, ...oversize] };
}

function coldStartTable(rows: readonly ColdStartRow[], m: SectionFigures): string {
  return table(
    [
      'function',
      'KB ours',
      'KB SDK client',
      'KB first',
      'size ÷ SDK client',
      'ms ours',
      'ms SDK client',
      'ms first',
      'ms ÷ SDK client',
      'process wall ms (ours / SDK client / first)',
      'argon2',
      'heaviest in our bundle',
      'answer',
    ],
    [
      ['_empty handler_', '0.06', '', '', '', fmt(m.emptyMs), '', '', '', fmt(m.baselineMs), '—', '', '200'],
      ...rows.map((r) => [
        r.name,
        fmt(r.oursKb),
        fmt(r.beforeKb),
        fmt(r.firstKb),
        ratio(r.oursKb, r.beforeKb),
        fmt(r.oursMs),
        fmt(r.beforeMs),
        fmt(r.firstMs),
        ratio(r.oursMs, r.beforeMs),
        `${fmt(r.oursWallMs)} / ${fmt(r.beforeWallMs)} / ${fmt(r.firstWallMs)}`,
        r.argon2 ? 'yes' : '—',
        r.heaviest,
        r.outcome,
      ]),
    ],
  );
}

/** Means over the bundles that have code (over 10 KB). */
function averagesNote(rows: readonly ColdStartRow[], emptyMs: number): string {
  const sized = rows.filter((r) => r.oursKb > 10);
  return (
    `Bundles average **${fmt(meanOfKnown(sized.map((r) => r.oursKb)))} KB** (largest ${fmt(max(sized.map((r) => r.oursKb)))} KB, ` +
    `cap ${BUNDLE_CAP_KB} KB) against ${fmt(meanOfKnown(sized.map((r) => r.beforeKb)))} KB with the SDK's DynamoDB client ` +
    `(largest ${fmt(max(sized.map((r) => r.beforeKb)))} KB) and ${fmt(meanOfKnown(sized.map((r) => r.firstKb)))} KB first; ` +
    `import + first event **${fmt(meanOfKnown(sized.map((r) => r.oursMs)))} ms** on average against ` +
    `${fmt(meanOfKnown(sized.map((r) => r.beforeMs)))} ms with the SDK client, ${fmt(meanOfKnown(sized.map((r) => r.firstMs)))} ms first, ` +
    `and ${fmt(emptyMs)} ms for an empty handler.`
  );
}

function methodNote(m: SectionFigures): string {
  const [sdk, first] = BEFORE as [Variant, Variant];
  return (
    `"ms": median of ${m.runs} fresh \`node\` processes of the time to import the bundle and handle one event ` +
    '(`bench/cold-start-child.mjs`), with the environment the stack sets (`AWS_LAMBDA_FUNCTION_NAME` set, so ' +
    'dependencies are built at import as on Lambda; `--enable-source-maps` as `NODE_OPTIONS` in the stack). ' +
    "The event does the route's real work against dynalite (bench/cold-start-world.ts), and Secrets Manager " +
    '(GetSecretValue of the key sets) and `@connections` are local stand-ins over HTTP, so the network is a ' +
    'loopback. "process wall" adds Node\'s own start-up: an empty handler takes ' +
    `${fmt(m.baselineMs)} ms of wall time here. Importing \`@node-rs/argon2\` alone takes ${fmt(m.argon2Ms)} ms; ` +
    'only the functions marked "argon2" load it (the native binary sits beside their bundle on Lambda). ' +
    '"ours": the stack\'s esbuild options (ESM, minified, tree-shaken ESM builds of the SDK, source map ' +
    'beside, the aliases of lib/handler-function.ts), with DynamoDB reached through lambdas/aws/dynamodb.ts: ' +
    "the SDK's `Client`, commands, JSON protocol and codec over our signed keep-alive transport. " +
    `"SDK client": the same functions at commit ${sdk.ref}, with ${sdk.label} (its config resolution, ` +
    'endpoint rule set, middleware, HTTP handler and retry). ' +
    `"first": at commit ${first.ref}, with ${first.label}. The empty handler is ` +
    "`export const handler = async () => ({ statusCode: 200 })`. Lambda's own init (container, runtime) is " +
    'not included and is the same for all.'
  );
}

/** Sources git could not give, options that drifted, functions that cannot start: each a warning. */
function warnings(m: SectionFigures): string[] {
  return [
    ...(m.missing.length > 0
      ? ['', `⚠ git could not give the sources of ${m.missing.join(', ')}: no figures for them.`]
      : []),
    ...(m.drift.length > 0
      ? ['', `⚠ lib/handler-function.ts no longer shows ${m.drift.join(', ')}: update bench/cold-start.ts.`]
      : []),
    ...(m.crashes.length > 0
      ? [
          '',
          '**Functions that cannot start with the environment the stack gives them** (timed above with ' +
            '`PUBLIC_KEYS_SECRET_ARN` added, which they never read):',
          '',
          ...m.crashes.map((c) => `- ❌ ${c}`),
        ]
      : []),
  ];
}
