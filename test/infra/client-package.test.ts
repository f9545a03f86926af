import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../../lib/paths.ts';
import { buildClientPackage, packClientPackage } from '../../packages/client/build.ts';
import { startTestSystem, type TestSystem } from '../kit/system.ts';
import { ALLOWED_ORIGIN } from '../kit/ws-client.ts';

/**
 * The client as a web app gets it: built, `npm pack`ed, installed from the tarball into a
 * scratch project with no registry, type-checked by tsc against its `.d.ts` files, compiled,
 * and run against the real local system.
 */
const run = promisify(execFile);
const OFFLINE = { ...process.env, npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' };
const TSC = join(REPO_ROOT, 'node_modules', 'typescript', 'bin', 'tsc');

const APP = `import WebSocket from 'ws';
import { RealtimeClient, RealtimeError, type ChatMessage } from 'jwt-realtime-client';

const env = process.env as Record<string, string>;
const client = new RealtimeClient({
  httpUrl: env.HTTP_URL,
  wsUrl: env.WS_URL,
  // Node 20 has no global WebSocket: ws's, with the Origin a page would send.
  createSocket: (url, protocols) => new WebSocket(url, protocols, { origin: env.ORIGIN }) as never,
});
const got = new Promise<ChatMessage>((resolve) => client.on('message', resolve));
await client.register('packaged', 'correct horse battery staple');
await client.login('packaged', 'correct horse battery staple');
await client.connect();
const joined = await client.join('lobby', { history: 5 });
await client.send('lobby', 'hello from the package');
const message = await got;
let refused = '';
try {
  await client.join('not a room!');
} catch (err) {
  if (err instanceof RealtimeError) refused = err.code;
}
client.close();
console.log(JSON.stringify({ room: joined.room, from: message.from, text: message.text, refused }));

/** Never called: the declarations are real types, so these must not compile. */
export function typesAreChecked(c: RealtimeClient): void {
  // @ts-expect-error a room is a string
  void c.join(42);
  // @ts-expect-error no such event
  c.on('no_such_event', () => {});
}
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2022', 'DOM'],
    types: ['node'],
    strict: true,
    skipLibCheck: false,
    outDir: 'out',
  },
  files: ['app.ts'],
};

let scratch = '';
let system: TestSystem;
let files: string[] = [];
let tarball = '';

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'jr-client-app-'));
  files = await buildClientPackage();
  tarball = await packClientPackage(join(scratch, 'tarball'), OFFLINE);
  const app = join(scratch, 'app');
  await mkdir(app);
  await writeFile(
    join(app, 'package.json'),
    JSON.stringify({ name: 'scratch-app', private: true, type: 'module', dependencies: {} }),
  );
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', tarball], {
    cwd: app,
    env: OFFLINE,
    timeout: 60_000,
  });
  // The app's own dependencies, taken from this repository's node_modules instead of the registry.
  for (const dep of ['ws', '@types/ws', '@types/node', 'undici-types']) {
    await mkdir(join(app, 'node_modules', dep, '..'), { recursive: true });
    await symlink(join(REPO_ROOT, 'node_modules', dep), join(app, 'node_modules', dep), 'dir');
  }
  await writeFile(join(app, 'app.ts'), APP);
  await writeFile(join(app, 'tsconfig.json'), JSON.stringify(TSCONFIG));
  system = await startTestSystem();
}, 120_000);

afterAll(async () => {
  await system?.close();
  if (scratch) await rm(scratch, { recursive: true, force: true });
});

describe('the client package', () => {
  it('has its own package.json with exports and types, and packs only the built files', async () => {
    const manifest = JSON.parse(await readFile(join(REPO_ROOT, 'packages/client/package.json'), 'utf8'));
    expect(manifest.exports['.']).toEqual({ types: './dist/index.d.ts', default: './dist/index.js' });
    expect(manifest.types).toBe('./dist/index.d.ts');
    expect(files).toContain('dist/index.js');
    expect(files).toContain('dist/index.d.ts');
    const { stdout } = await run('tar', ['tzf', tarball]);
    const packed = stdout.trim().split('\n');
    expect(packed).toContain('package/dist/index.js');
    expect(packed.every((f) => /^package\/(dist\/|package\.json$|README\.md$)/.test(f))).toBe(true);
  });

  it('declares nothing outside itself: no server module, no Node or AWS types', async () => {
    for (const file of files.filter((f) => f.endsWith('.d.ts'))) {
      const text = await readFile(join(REPO_ROOT, 'packages/client', file), 'utf8');
      const specifiers = [...text.matchAll(/from\s+['"]([^'"]+)['"]/g)].map((m) => m[1] ?? '');
      expect(
        specifiers.filter((s) => !s.startsWith('.')),
        file,
      ).toEqual([]);
      expect(
        specifiers.filter((s) => s.endsWith('.ts')),
        file,
      ).toEqual([]);
    }
  });

  it('installs from the tarball offline, type-checks in a strict project, and talks to the local system', async () => {
    const app = join(scratch, 'app');
    await run('node', [TSC, '-p', 'tsconfig.json'], { cwd: app, timeout: 60_000 }).catch((err) => {
      throw new Error(`tsc failed:\n${err.stdout}${err.stderr}`);
    });
    const { stdout } = await run('node', ['out/app.js'], {
      cwd: app,
      env: { ...process.env, HTTP_URL: system.httpUrl, WS_URL: system.wsUrl, ORIGIN: ALLOWED_ORIGIN },
      timeout: 30_000,
    });
    expect(JSON.parse(stdout)).toEqual({
      room: 'lobby',
      from: 'packaged',
      text: 'hello from the package',
      refused: 'bad_request',
    });
  });
});
