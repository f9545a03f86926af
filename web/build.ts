import { readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const WEB_DIR = dirname(fileURLToPath(import.meta.url));

/** One file of the built page. */
export interface WebAsset {
  readonly body: Uint8Array;
  readonly contentType: string;
}

/** The built page by URL path: `/index.html`, `/app.js`, `/app.css`. */
export type WebBundle = ReadonlyMap<string, WebAsset>;

/**
 * Builds the demo page with esbuild: `app.ts` (and the client library) bundled and minified
 * for browsers, `style.css` minified, `index.html` as is. In memory unless `outDir` is
 * given, so that several local systems (tests run in parallel) never race on one folder.
 */
export async function buildWeb(options: { outDir?: string } = {}): Promise<WebBundle> {
  const { build } = await import('esbuild');
  const result = await build({
    entryPoints: [
      { in: join(WEB_DIR, 'app.ts'), out: 'app' },
      { in: join(WEB_DIR, 'style.css'), out: 'app' },
    ],
    bundle: true,
    minify: true,
    format: 'esm',
    // The JWE code is a chunk of its own, fetched only when the server encrypts.
    splitting: true,
    target: ['es2022', 'chrome109', 'firefox115', 'safari16'],
    platform: 'browser',
    outdir: '/web',
    legalComments: 'none',
    write: false,
    metafile: true,
    logLevel: 'silent',
  });
  const files = new Map<string, WebAsset>();
  for (const file of result.outputFiles ?? []) {
    const name = `/${file.path.split('/').pop()}`;
    files.set(name, {
      body: file.contents,
      contentType: name.endsWith('.js') ? 'text/javascript; charset=utf-8' : 'text/css; charset=utf-8',
    });
  }
  files.set('/index.html', {
    body: await readFile(join(WEB_DIR, 'index.html')),
    contentType: 'text/html; charset=utf-8',
  });
  if (options.outDir) {
    const { mkdir, writeFile } = await import('node:fs/promises');
    await mkdir(options.outDir, { recursive: true });
    for (const [name, asset] of files) await writeFile(join(options.outDir, name), asset.body);
  }
  return files;
}

// `npx tsx web/build.ts [outDir]`: the page as files, to host anywhere with a config.json beside it.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const outDir = resolve(process.argv[2] ?? '.build/web');
  const bundle = await buildWeb({ outDir });
  for (const [name, asset] of bundle) console.log(`${name.padEnd(12)} ${asset.body.length} bytes`);
}
