import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { REPO_ROOT } from './paths.ts';

/** The file `@node-rs/argon2` loads on Lambda (arm64, glibc). */
export const ARGON2_BINARY = 'argon2.linux-arm64-gnu.node';
const PACKAGES = ['@node-rs/argon2', '@node-rs/argon2-linux-arm64-gnu'] as const;

/** The version of `@node-rs/argon2` the project resolves, so Lambda runs the same one the tests do. */
export function argon2Version(): string {
  const require = createRequire(join(REPO_ROOT, 'package.json'));
  const manifest = JSON.parse(readFileSync(require.resolve('@node-rs/argon2/package.json'), 'utf8')) as {
    version: string;
  };
  return manifest.version;
}

/**
 * A folder holding `node_modules/@node-rs/argon2` and its linux-arm64-gnu binary package,
 * installed once per version into `.build/` (gitignored), never into the project's own
 * `node_modules`, whose platform packages are the host's.
 *
 * `npm ci` runs this once (the `postinstall` script), while it is online anyway; later synths,
 * tests and benchmarks reuse the folder and work offline.
 */
export function ensureArgon2Arm64(version = argon2Version()): string {
  const prefix = join(REPO_ROOT, '.build', `argon2-${version}-linux-arm64-gnu`);
  if (isComplete(prefix)) return prefix;
  // Install beside the target and rename into place, so parallel synths (test workers) never
  // see a half-written folder.
  const staging = `${prefix}.tmp-${process.pid}`;
  rmSync(staging, { recursive: true, force: true });
  mkdirSync(staging, { recursive: true });
  try {
    execFileSync(
      'npm',
      [
        'install',
        '--prefix',
        staging,
        '--no-save',
        '--no-package-lock',
        '--no-audit',
        '--no-fund',
        '--prefer-offline',
        '--ignore-scripts',
        '--cpu=arm64',
        '--os=linux',
        '--libc=glibc',
        `@node-rs/argon2@${version}`,
      ],
      { stdio: ['ignore', 'ignore', 'pipe'], timeout: 120_000 },
    );
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    const detail = (err as { stderr?: Buffer }).stderr?.toString().trim().split('\n').slice(-3).join('\n');
    throw new Error(
      `Cannot bundle argon2 for Lambda: npm could not install @node-rs/argon2@${version} for linux-arm64-gnu into ${prefix}.\n` +
        'It is fetched once from the npm registry (or the npm cache) and kept in .build/ for offline synths.\n' +
        `Run "npm run postinstall" once with registry access, or install it by hand:\n  npm install --prefix ${prefix} --no-save --cpu=arm64 --os=linux --libc=glibc @node-rs/argon2@${version}\n${detail ?? ''}`,
    );
  }
  if (!isComplete(staging)) {
    rmSync(staging, { recursive: true, force: true });
    throw new Error(
      `npm installed @node-rs/argon2@${version} but not ${ARGON2_BINARY}; check npm's --cpu/--os/--libc support (npm >= 10.2)`,
    );
  }
  try {
    if (!isComplete(prefix)) {
      rmSync(prefix, { recursive: true, force: true });
      renameSync(staging, prefix);
    }
  } catch (err) {
    if (!isComplete(prefix)) throw err; // another synth won the race with a complete copy
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return prefix;
}

function isComplete(prefix: string): boolean {
  return (
    existsSync(join(prefix, 'node_modules', '@node-rs', 'argon2', 'index.js')) &&
    existsSync(join(prefix, 'node_modules', '@node-rs', 'argon2-linux-arm64-gnu', ARGON2_BINARY))
  );
}

/**
 * Shell commands for `commandHooks.afterBundling`: when the bundle imports `@node-rs/argon2`
 * (kept external: a native module cannot be bundled), copy the JS loader and the arm64
 * binary into the asset's `node_modules`, where that import finds them on Lambda.
 *
 * Decided by the bundle, not only by the manifest's `argon2` flag: in ESM every static
 * import runs at cold start, so a function that reaches the password module through a
 * shared import (auth.ts) needs the binary too, or it cannot start.
 */
export function copyArgon2Commands(prefix: string, outputDir: string): string[] {
  const target = join(outputDir, 'node_modules', '@node-rs');
  const copy = [
    `mkdir -p ${quote(target)}`,
    ...PACKAGES.map((pkg) => `cp -R ${quote(join(prefix, 'node_modules', pkg))} ${quote(target)}/`),
  ].join(' && ');
  return [`if grep -q '@node-rs/argon2' ${quote(join(outputDir, 'index.mjs'))}; then ${copy}; fi`];
}

function quote(path: string): string {
  return `'${path.replace(/'/g, `'\\''`)}'`;
}
