import { execFile } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const PACKAGE_DIR = dirname(fileURLToPath(import.meta.url));
const REPO_ROOT = resolve(PACKAGE_DIR, '..', '..');
const ENTRY = join(REPO_ROOT, 'web', 'client.ts');

/**
 * Builds the client package in `packages/client/dist`: `web/client.ts` bundled by esbuild to
 * ESM (`index.js`, with the JWE code in a chunk loaded only when the server
 * encrypts), and its declarations emitted by tsc under `types/`, with `.js` specifiers as
 * ESM declarations have. Returns the files written, relative to the package.
 */
export async function buildClientPackage(): Promise<string[]> {
  const dist = join(PACKAGE_DIR, 'dist');
  await rm(dist, { recursive: true, force: true });
  const { build } = await import('esbuild');
  await build({
    entryPoints: { index: ENTRY },
    outdir: dist,
    bundle: true,
    format: 'esm',
    splitting: true,
    chunkNames: 'chunks/[name]-[hash]',
    platform: 'browser',
    target: ['es2022'],
    legalComments: 'eof',
    logLevel: 'silent',
  });
  await emitDeclarations(join(dist, 'types'));
  const main = relative(dist, join(dist, 'types', 'web', 'client.d.ts'));
  await writeFile(join(dist, 'index.d.ts'), `export * from './${main.replace(/\.d\.ts$/, '.js')}';\n`);
  return (await filesUnder(dist)).map((f) => relative(PACKAGE_DIR, f));
}

async function emitDeclarations(outDir: string): Promise<void> {
  const ts = (await import('typescript')).default;
  const program = ts.createProgram([ENTRY], {
    declaration: true,
    emitDeclarationOnly: true,
    outDir,
    rootDir: REPO_ROOT,
    strict: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    allowImportingTsExtensions: true,
    verbatimModuleSyntax: true,
    lib: ['lib.es2022.d.ts', 'lib.dom.d.ts'],
    types: [],
    skipLibCheck: true,
  });
  const result = program.emit(undefined, (file, text) => {
    mkdirSync(dirname(file), { recursive: true });
    // Consumers resolve `./x.js` to `./x.d.ts`; a `.ts` specifier would need allowImportingTsExtensions.
    writeFileSync(file, text.replace(/(from\s+['"]\.{1,2}\/[^'"]+)\.ts(['"])/g, '$1.js$2'));
  });
  const problems = ts.getPreEmitDiagnostics(program).concat(result.diagnostics);
  if (problems.length > 0) {
    const host = {
      getCanonicalFileName: (f: string) => f,
      getCurrentDirectory: () => REPO_ROOT,
      getNewLine: () => '\n',
    };
    throw new Error(`the client's declarations did not build:\n${ts.formatDiagnostics(problems, host)}`);
  }
}

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await filesUnder(path)));
    else out.push(path);
  }
  return out.sort();
}

/** `npm pack` of the built package into `destination`; returns the tarball's path. */
export async function packClientPackage(
  destination: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  await mkdir(destination, { recursive: true });
  const { stdout } = await promisify(execFile)(
    'npm',
    ['pack', '--json', '--pack-destination', destination, '--no-audit', '--no-fund'],
    { cwd: PACKAGE_DIR, env, timeout: 60_000 },
  );
  const [packed] = JSON.parse(stdout) as { filename: string }[];
  if (!packed) throw new Error('npm pack wrote no tarball');
  return join(destination, packed.filename);
}

// `npm run build:client`: build, then pack into .build/ for `npm install <tarball>` in a web app.
if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const files = await buildClientPackage();
  for (const file of files) {
    const { size } = await stat(join(PACKAGE_DIR, file));
    console.log(`${file.padEnd(56)} ${(size / 1024).toFixed(1).padStart(7)} KB`);
  }
  const tarball = await packClientPackage(join(REPO_ROOT, '.build'));
  console.log(
    `\n${relative(process.cwd(), tarball)}  ${((await readFile(tarball)).length / 1024).toFixed(1)} KB`,
  );
  console.log(`install it in a web app with: npm install ${tarball}`);
}
