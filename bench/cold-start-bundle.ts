import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { type BuildOptions, build, type Metafile } from 'esbuild';
import type { FunctionSpec } from '../lambdas/functions.ts';
import { BUNDLE_ALIASES, RUNTIME } from '../lib/handler-function.ts';
import { REPO_ROOT } from '../lib/paths.ts';

/** Under node_modules, so that the external `@node-rs/argon2` resolves as it does beside a Lambda bundle. */
export const OUT = join(REPO_ROOT, 'node_modules', '.cache', 'jr-bench');

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
export interface Variant {
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
export const srcOf = (v: Variant) => join(OUT, `src-${v.ref}`);

/** The functions' sources at `ref` (lambdas/ only), or false where git cannot give them. */
export function extract(v: Variant): boolean {
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

export function checkStackOptions(): string[] {
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

export interface Bundle {
  readonly file: string;
  readonly bytes: number;
  readonly metafile: Metafile;
}

export async function bundle(spec: FunctionSpec, variant: Variant | undefined): Promise<Bundle> {
  const entry = join(variant ? srcOf(variant) : REPO_ROOT, 'lambdas', `${spec.name}.ts`);
  const file = join(OUT, spec.name, variant?.key ?? 'ours', 'index.mjs');
  const { alias, ...withoutAliases } = stackBuildOptions(entry, file);
  const result = await build(!variant || variant.aliases ? { ...withoutAliases, alias } : withoutAliases);
  if (!result.metafile) throw new Error('esbuild gave no metafile');
  return { file, bytes: statSync(file).size, metafile: result.metafile };
}

/** The packages (or our own code) that weigh most in a bundle. */
export function heaviest(meta: Metafile, top = 3): string {
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

export const hasArgon2 = (meta: Metafile) =>
  Object.values(meta.outputs).some((o) => o.imports.some((i) => i.path === '@node-rs/argon2'));
