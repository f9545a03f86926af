import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildOptions, build, type Metafile } from 'esbuild';
import { FUNCTIONS, type FunctionSpec } from '../lambdas/functions.ts';
import { BUNDLE_ALIASES, RUNTIME } from '../lib/handler-function.ts';
import { REPO_ROOT } from '../lib/paths.ts';
import { type DbCallCost, dbCallCostMarkdown, measureDbCallCost } from './cold-start-db-cpu.ts';
import { type ChildRun, runInChild, startColdStartWorld } from './cold-start-world.ts';
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

/** Under node_modules, so that the external `@node-rs/argon2` resolves as it does beside a Lambda bundle. */
const OUT = join(REPO_ROOT, 'node_modules', '.cache', 'jr-bench');

/** As lib/handler-function.ts writes it: esbuild's CommonJS shim needs a real `require` in ESM. */
const ESM_REQUIRE_BANNER =
  "import { createRequire } from 'module'; const require = createRequire(import.meta.url);";

/**
 * The esbuild options `HandlerFunction` (lib/handler-function.ts) gives NodejsFunction, which
 * CDK turns into `esbuild --bundle <entry> --target=node22 --platform=node --format=esm --minify
 * --sourcemap --sources-content=false --external:@node-rs/argon2 --banner:js=… --main-fields=module,main`.
 * Checked against that file's text below, so a change there is noticed here.
 */
export function stackBuildOptions(entry: string, outfile: string): BuildOptions {
  const version = /nodejs(\d+)/.exec(RUNTIME.name)?.[1] ?? '24';
  return {
    entryPoints: [entry],
    bundle: true,
    target: `node${version}`,
    platform: 'node',
    format: 'esm',
    outfile,
    minify: true,
    sourcemap: true,
    sourcesContent: false,
    external: ['@node-rs/argon2'],
    banner: { js: ESM_REQUIRE_BANNER },
    mainFields: ['module', 'main'],
    alias: { ...BUNDLE_ALIASES },
    absWorkingDir: REPO_ROOT,
    metafile: true,
    logLevel: 'error',
  };
}

/** A build of the functions to set ours beside: their sources at a commit, with that commit's options. */
interface Variant {
  readonly key: 'sdk' | 'first';
  readonly ref: string;
  /** Whether that commit's stack bundled with the aliases of lib/handler-function.ts. */
  readonly aliases: boolean;
  readonly label: string;
}

/**
 * What "before" stands for: the last commit whose functions carried the SDK's own `DynamoDBClient`
 * (with the aliases, so credentials from the environment already), and the first measured one,
 * whose functions also carried the SDK's default credential chain, the `@connections` and Secrets
 * Manager SDK clients and jose's JWE.
 */
export const BEFORE: readonly Variant[] = [
  { key: 'sdk', ref: '570ac87', aliases: true, label: "the SDK's DynamoDBClient" },
  {
    key: 'first',
    ref: 'd188216',
    aliases: false,
    label: 'every SDK client and the default credential chain',
  },
];
const EMPTY_HANDLER = 'export const handler = async () => ({ statusCode: 200 });\n';
/** The size cap test/infra/bundle.test.ts holds every bundle to. */
export const BUNDLE_CAP_KB = 200;
const srcOf = (v: Variant) => join(OUT, `src-${v.ref}`);

/** The functions' sources at `ref` (lambdas/ only), or false where git cannot give them. */
function extract(v: Variant): boolean {
  try {
    rmSync(srcOf(v), { recursive: true, force: true });
    mkdirSync(srcOf(v), { recursive: true });
    const tar = execFileSync('git', ['archive', '--format=tar', v.ref, 'lambdas'], {
      cwd: REPO_ROOT,
      maxBuffer: 64 * 1024 * 1024,
      stdio: ['ignore', 'pipe', 'ignore'],
    });
    execFileSync('tar', ['-x', '-C', srcOf(v)], { input: tar });
    return true;
  } catch {
    return false;
  }
}

function checkStackOptions(): string[] {
  const source = readFileSync(join(REPO_ROOT, 'lib', 'handler-function.ts'), 'utf8');
  const expected = [
    'format: OutputFormat.ESM',
    "mainFields: ['module', 'main']",
    'minify: true',
    'sourceMap: true',
    'sourcesContent: false',
    'bundleAwsSDK: true',
    "externalModules: ['@node-rs/argon2']",
    'banner: ESM_REQUIRE_BANNER',
  ];
  return expected.filter((e) => !source.includes(e));
}

interface Bundle {
  readonly file: string;
  readonly bytes: number;
  readonly metafile: Metafile;
}

async function bundle(spec: FunctionSpec, variant: Variant | undefined): Promise<Bundle> {
  const entry = join(variant ? srcOf(variant) : REPO_ROOT, 'lambdas', `${spec.name}.ts`);
  const file = join(OUT, spec.name, variant?.key ?? 'ours', 'index.mjs');
  const { alias, ...withoutAliases } = stackBuildOptions(entry, file);
  const result = await build(!variant || variant.aliases ? { ...withoutAliases, alias } : withoutAliases);
  if (!result.metafile) throw new Error('esbuild gave no metafile');
  return { file, bytes: statSync(file).size, metafile: result.metafile };
}

/** The packages (or our own code) that weigh most in a bundle. */
function heaviest(meta: Metafile, top = 3): string {
  const output = Object.values(meta.outputs).find((o) => o.entryPoint);
  const byPackage = new Map<string, number>();
  for (const [path, input] of Object.entries(output?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
    const name = m?.[1] ?? 'our code';
    byPackage.set(name, (byPackage.get(name) ?? 0) + input.bytesInOutput);
  }
  const total = [...byPackage.values()].reduce((a, b) => a + b, 0);
  return [...byPackage.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([name, bytes]) => `${name} ${Math.round((bytes / total) * 100)}%`)
    .join(', ');
}

const hasArgon2 = (meta: Metafile) =>
  Object.values(meta.outputs).some((o) => o.imports.some((i) => i.path === '@node-rs/argon2'));

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
    // Node itself, and the argon2 native module alone, for scale.
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
    const extracted = BEFORE.filter(extract);

    const rows: ColdStartRow[] = [];
    const crashes: string[] = [];
    for (const spec of FUNCTIONS) {
      const variants = extracted.filter((v) => existsSync(join(srcOf(v), 'lambdas', `${spec.name}.ts`)));
      const [ours, ...befores] = await Promise.all([
        bundle(spec, undefined),
        ...variants.map((v) => bundle(spec, v)),
      ]);
      if (!ours) throw new Error('no bundle');
      const targets = [
        { key: 'ours' as const, bundle: ours },
        ...variants.map((v, i) => ({ key: v.key, bundle: befores[i] as Bundle })),
      ];
      // First with exactly the stack's environment: a function that cannot start is the worst cold start.
      let env = world.envFor(spec);
      try {
        await runInChild(
          ours.file,
          await world.eventFileFor(spec, join(OUT, `${spec.name}-probe.json`)),
          env,
        );
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? err);
        const message = /^\w*Error: .*$/m.exec(stderr)?.[0] ?? stderr.split('\n')[0];
        crashes.push(`${spec.name} fails its cold start with the stack's environment: ${message}`);
        if (spec.keys !== 'none') throw err;
        env = world.envFor(spec, true);
      }
      const samples: Record<string, ChildRun[]> = { ours: [], sdk: [], first: [] };
      // Alternating, so that drift on a noisy machine hits all alike.
      for (let i = 0; i < runs; i++) {
        for (const t of targets) {
          const file = await world.eventFileFor(spec, join(OUT, `${spec.name}-${t.key}-${i}.json`));
          samples[t.key]?.push(await runInChild(t.bundle.file, file, env));
        }
      }
      const total = (c: ChildRun) => c.importMs + c.handleMs;
      const of = (key: string) => samples[key] ?? [];
      const ms = (key: string) => (of(key).length > 0 ? median(of(key).map(total)) : Number.NaN);
      const wall = (key: string) => (of(key).length > 0 ? median(of(key).map((c) => c.wallMs)) : Number.NaN);
      const kb = (key: string) => {
        const t = targets.find((x) => x.key === key);
        return t ? t.bundle.bytes / 1024 : Number.NaN;
      };
      const outcome = [
        ...new Set(Object.values(samples).flatMap((xs) => xs.map((c) => String(c.outcome)))),
      ].join('/');
      rows.push({
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
      });
      progress(
        `cold start: ${spec.name} ${fmt(rows.at(-1)?.oursMs ?? 0)} ms vs ${fmt(rows.at(-1)?.beforeMs ?? 0)} ms with the SDK client`,
      );
    }
    const missing = BEFORE.filter((v) => !extracted.includes(v)).map((v) => v.ref);
    const dbCalls = await measureDbCallCost();
    return {
      rows,
      baselineMs: median(baseline),
      emptyMs: median(emptyMs),
      argon2ImportMs: median(argon2),
      dbCalls,
      section: coldStartSection(rows, dbCalls, {
        baselineMs: median(baseline),
        emptyMs: median(emptyMs),
        argon2Ms: median(argon2),
        runs,
        drift,
        crashes,
        missing,
      }),
    };
  } finally {
    await world.close();
  }
}

function coldStartSection(
  rows: readonly ColdStartRow[],
  dbCalls: readonly DbCallCost[],
  m: {
    baselineMs: number;
    emptyMs: number;
    argon2Ms: number;
    runs: number;
    drift: readonly string[];
    crashes: readonly string[];
    missing: readonly string[];
  },
): Section {
  const oversize = rows
    .filter((r) => r.oursKb > BUNDLE_CAP_KB)
    .map((r) => `${r.name} is ${fmt(r.oursKb)} KB, over the ${BUNDLE_CAP_KB} KB cap`);
  const sized = rows.filter((r) => r.oursKb > 10);
  const [sdk, first] = BEFORE as [Variant, Variant];
  const markdown = [
    table(
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
        [
          '_empty handler_',
          '0.06',
          '',
          '',
          '',
          fmt(m.emptyMs),
          '',
          '',
          '',
          fmt(m.baselineMs),
          '—',
          '',
          '200',
        ],
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
    ),
    '',
    `Bundles average **${fmt(meanOfKnown(sized.map((r) => r.oursKb)))} KB** (largest ${fmt(max(sized.map((r) => r.oursKb)))} KB, ` +
      `cap ${BUNDLE_CAP_KB} KB) against ${fmt(meanOfKnown(sized.map((r) => r.beforeKb)))} KB with the SDK's DynamoDB client ` +
      `(largest ${fmt(max(sized.map((r) => r.beforeKb)))} KB) and ${fmt(meanOfKnown(sized.map((r) => r.firstKb)))} KB first; ` +
      `import + first event **${fmt(meanOfKnown(sized.map((r) => r.oursMs)))} ms** on average against ` +
      `${fmt(meanOfKnown(sized.map((r) => r.beforeMs)))} ms with the SDK client, ${fmt(meanOfKnown(sized.map((r) => r.firstMs)))} ms first, ` +
      `and ${fmt(m.emptyMs)} ms for an empty handler.`,
    '',
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
      'not included and is the same for all.',
    '',
    dbCallCostMarkdown(dbCalls),
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
  ].join('\n');
  return { title: 'Cold start per Lambda bundle', markdown, failures: [...m.crashes, ...oversize] };
}
