import type { Metafile } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { BEFORE, hasArgon2, heaviest, stackBuildOptions } from '../../../bench/cold-start-bundle.ts';

/** A metafile with one output whose inputs weigh `bytes` each, importing `imports`. */
function metafile(bytes: Record<string, number>, imports: string[] = []): Metafile {
  return {
    inputs: {},
    outputs: {
      'out/index.mjs': {
        bytes: 0,
        entryPoint: 'lambdas/http-login.ts',
        exports: [],
        imports: imports.map((path) => ({ path, kind: 'import-statement', external: true })),
        inputs: Object.fromEntries(Object.entries(bytes).map(([path, n]) => [path, { bytesInOutput: n }])),
      },
    },
  };
}

describe('heaviest', () => {
  it('names packages by their share of the bundle, scoped ones whole, our files as our code', () => {
    const meta = metafile({
      'node_modules/@smithy/core/dist/a.js': 40,
      'node_modules/@smithy/core/dist/b.js': 10,
      'lambdas/core/tokens.ts': 20,
      'lambdas/http-login.ts': 5,
      'node_modules/jose/dist/x.js': 15,
      'node_modules/tiny/index.js': 10,
    });
    expect(heaviest(meta)).toBe('@smithy/core 50%, our code 25%, jose 15%');
    expect(heaviest(meta, 1)).toBe('@smithy/core 50%');
  });

  it('counts a nested dependency toward the package that brought it in', () => {
    expect(heaviest(metafile({ 'node_modules/a/node_modules/b/i.js': 1 }))).toBe('a 100%');
  });
});

describe('hasArgon2', () => {
  it('is true only when the bundle imports the external native module', () => {
    expect(hasArgon2(metafile({ 'lambdas/x.ts': 1 }, ['@node-rs/argon2']))).toBe(true);
    expect(hasArgon2(metafile({ 'lambdas/x.ts': 1 }, ['node:crypto']))).toBe(false);
  });
});

describe('stackBuildOptions', () => {
  it('bundles one entry as ESM for node, minified, argon2 left external, with a metafile', () => {
    const o = stackBuildOptions('lambdas/http-login.ts', 'out/index.mjs');
    expect(o).toMatchObject({
      entryPoints: ['lambdas/http-login.ts'],
      outfile: 'out/index.mjs',
      bundle: true,
      platform: 'node',
      format: 'esm',
      minify: true,
      external: ['@node-rs/argon2'],
      metafile: true,
    });
    expect(o.target).toMatch(/^node\d+$/);
  });
});

describe('BEFORE', () => {
  it('names two distinct commits, the SDK-client one first', () => {
    expect(BEFORE.map((v) => v.key)).toEqual(['sdk', 'first']);
    expect(new Set(BEFORE.map((v) => v.ref)).size).toBe(2);
  });
});
