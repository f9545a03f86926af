import { execFile } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type ColdStartWorld,
  EXPECTED_OUTCOMES,
  runInChild,
  startColdStartWorld,
} from '../../bench/cold-start-world.ts';
import { generateStoredKey } from '../../lambdas/core/keys.ts';
import { FUNCTIONS } from '../../lambdas/functions.ts';
import { ARGON2_BINARY } from '../../lib/argon2.ts';
import { REPO_ROOT } from '../../lib/paths.ts';

/**
 * The real thing: `npx cdk synth` of bin/app.ts through the CDK CLI, bundling every function
 * with the local esbuild, with no AWS credentials and the npm registry unreachable.
 */
const run = promisify(execFile);
const outdir = mkdtempSync(join(tmpdir(), 'jwt-realtime-cdk-out-'));
let synthSeconds = 0;
let synthOutput = '';

interface FunctionAsset {
  readonly logicalId: string;
  readonly name: string;
  readonly dir: string;
}
let assets: FunctionAsset[] = [];

/** The environment of a deployer's shell with no AWS account and no network but the loopback. */
function offlineEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^(AWS_|CDK_DEFAULT_)/.test(k)) env[k] = v;
  }
  return {
    ...env,
    AWS_EC2_METADATA_DISABLED: 'true', // no instance-metadata probe for credentials
    npm_config_offline: 'true',
    npm_config_registry: 'http://127.0.0.1:9/', // nothing listens: any registry call would fail
    CI: 'true',
    CDK_DISABLE_CLI_TELEMETRY: 'true',
  };
}

beforeAll(async () => {
  // The arm64 argon2 package came with `npm ci` (the postinstall script) into .build/; the
  // synth below, offline, must find it there instead of asking the registry.
  const started = Date.now();
  const { stdout, stderr } = await run('npx', ['cdk', 'synth', '-q', '--no-notices', '-o', outdir], {
    cwd: REPO_ROOT,
    env: offlineEnv(),
    maxBuffer: 64 * 1024 * 1024,
    timeout: 280_000,
  });
  synthSeconds = (Date.now() - started) / 1000;
  synthOutput = stdout + stderr;
  const template = JSON.parse(readFileSync(join(outdir, 'JwtRealtime.template.json'), 'utf8')) as {
    Resources: Record<
      string,
      { Type: string; Properties: { Description?: string }; Metadata?: Record<string, string> }
    >;
  };
  assets = Object.entries(template.Resources)
    .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
    .map(([logicalId, r]) => ({
      logicalId,
      name: (r.Properties.Description ?? '').split(':')[0] ?? '',
      dir: join(outdir, r.Metadata?.['aws:asset:path'] ?? 'missing'),
    }));
}, 300_000);

function files(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? files(join(dir, e.name)) : [join(dir, e.name)],
  );
}

/**
 * The size cap of every function bundle (minified `index.mjs`). The functions reach DynamoDB
 * through lambdas/aws/dynamodb.ts (the SDK's commands and protocol without the rest of its
 * client), so the largest weighs about 165 KB. See docs/deploy.md.
 */
const MAX_BUNDLE_KB = 200;

const kb = (bytes: number) => `${(bytes / 1024).toFixed(0)} KB`;
const argon2Path = (dir: string) =>
  join(dir, 'node_modules', '@node-rs', 'argon2-linux-arm64-gnu', ARGON2_BINARY);
const importsArgon2 = (dir: string) =>
  readFileSync(join(dir, 'index.mjs'), 'utf8').includes('@node-rs/argon2');

describe('cdk synth of the app', () => {
  it('synthesizes with no AWS credentials and no registry, every function bundled without Docker', () => {
    expect(assets.map((a) => a.name).sort()).toEqual(
      [...FUNCTIONS.map((f) => f.name), 'Custom resource'].sort(),
    );
    expect(synthOutput).not.toMatch(/docker/i);
    const rows = assets.map((a) => {
      const js = statSync(join(a.dir, 'index.mjs')).size;
      const total = files(a.dir).reduce((sum, f) => sum + statSync(f).size, 0);
      return `${a.name.padEnd(18)} ${kb(js).padStart(7)} js ${kb(total).padStart(8)} asset${existsSync(argon2Path(a.dir)) ? '  + argon2 arm64' : ''}`;
    });
    console.log(`cdk synth: ${synthSeconds.toFixed(1)} s\n${rows.join('\n')}`);
  });

  it('builds minified ESM bundles with source maps, the require shim and the AWS SDK inside', () => {
    for (const asset of assets) {
      const code = readFileSync(join(asset.dir, 'index.mjs'), 'utf8');
      expect(
        code.startsWith(
          "import { createRequire } from 'module'; const require = createRequire(import.meta.url);",
        ),
        asset.name,
      ).toBe(true);
      expect(code, asset.name).toMatch(/export\s*\{[^}]*\bas handler\b|export\s*\{[^}]*\bhandler\b/);
      expect(code, asset.name).toContain('//# sourceMappingURL=index.mjs.map');
      expect(existsSync(join(asset.dir, 'index.mjs.map')), asset.name).toBe(true);
      expect(code, asset.name).not.toMatch(/from\s*["']@aws-sdk\//);
      // Minified: long lines (template literals and license comments keep a few newlines).
      expect(code.split('\n').length, asset.name).toBeLessThan(Math.max(10, code.length / 2000));
    }
  });

  it('keeps every bundle under its size cap, without the SDK credential chain or unused SDK parts', () => {
    for (const asset of assets) {
      const code = readFileSync(join(asset.dir, 'index.mjs'), 'utf8');
      expect(statSync(join(asset.dir, 'index.mjs')).size / 1024, asset.name).toBeLessThanOrEqual(
        MAX_BUNDLE_KB,
      );
      // The default chain's providers: container credentials, SSO, web identity (STS), ini-file processes.
      for (const mark of [
        'AWS_CONTAINER_CREDENTIALS_FULL_URI',
        'sso_start_url',
        'AWS_WEB_IDENTITY_TOKEN_FILE',
        'credential_process',
      ]) {
        expect(code.includes(mark), `${asset.name} bundles ${mark}`).toBe(false);
      }
      // Event-stream serde and the API Gateway management client are not in any function.
      expect(code.includes(':message-type'), `${asset.name} bundles event-stream serde`).toBe(false);
      expect(code.includes('PostToConnection'), `${asset.name} bundles the management API client`).toBe(
        false,
      );
    }
  });

  it('puts the linux-arm64 argon2 binary into the login bundle', () => {
    const login = assets.find((a) => a.name === 'http-login');
    expect(login).toBeDefined();
    const listing = files(login?.dir ?? '').map((f) => relative(login?.dir ?? '', f));
    expect(listing).toEqual(
      expect.arrayContaining([
        'index.mjs',
        'node_modules/@node-rs/argon2/index.js',
        'node_modules/@node-rs/argon2/package.json',
        `node_modules/@node-rs/argon2-linux-arm64-gnu/${ARGON2_BINARY}`,
      ]),
    );
    const elf = readFileSync(argon2Path(login?.dir ?? ''));
    expect(elf.subarray(0, 4).toString('latin1')).toBe('\x7fELF');
    expect(elf.readUInt16LE(18)).toBe(183); // e_machine: EM_AARCH64
  });

  it('ships argon2 to exactly the bundles that import it, including every function flagged argon2', () => {
    for (const asset of assets) {
      expect(existsSync(argon2Path(asset.dir)), asset.name).toBe(importsArgon2(asset.dir));
    }
    for (const spec of FUNCTIONS.filter((f) => f.argon2)) {
      const asset = assets.find((a) => a.name === spec.name);
      expect(asset && existsSync(argon2Path(asset.dir)), spec.name).toBe(true);
    }
  });

  it('loads a bundle as an ES module under Node, with its handler', async () => {
    for (const name of ['http-jwks', 'Custom resource']) {
      const asset = assets.find((a) => a.name === name);
      const mod = (await import(pathToFileURL(join(asset?.dir ?? '', 'index.mjs')).href)) as {
        handler?: unknown;
      };
      expect(typeof mod.handler, name).toBe('function');
    }
  });

  it('reports no finding from cdk-nag or the CloudFormation validator', () => {
    const report = JSON.parse(readFileSync(join(outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: { pluginName: string; violations: { ruleName: string; severity: string }[] }[];
    };
    // cdk.json still holds the example allowedOrigins: its warning is the one entry, and loud.
    expect(report.pluginReports).toEqual([
      {
        pluginName: 'Construct Annotations',
        conclusion: 'success',
        metadata: expect.anything(),
        violations: [
          expect.objectContaining({
            ruleName: 'Annotation::jwt-realtime:placeholder-origin',
            severity: 'warning',
          }),
        ],
      },
    ]);
    expect(synthOutput).toContain('allowedOrigins includes the example https://app.example.com');
  });
});

describe('every built bundle, run as Lambda runs it', () => {
  let world: ColdStartWorld;
  /** Under node_modules, so that `@node-rs/argon2` resolves to this machine's build (the asset carries arm64's). */
  const runDir = join(REPO_ROOT, 'node_modules', '.cache', `jr-bundle-run-${process.pid}`);
  beforeAll(async () => {
    world = await startColdStartWorld('bundle-');
  }, 60_000);
  afterAll(async () => {
    rmSync(runDir, { recursive: true, force: true });
    await world?.close();
  });

  it('imports each function in a fresh node process and answers a real event against dynalite', async () => {
    const answers: Record<string, unknown> = {};
    for (const spec of FUNCTIONS) {
      const asset = assets.find((a) => a.name === spec.name);
      if (!asset) throw new Error(`no asset for ${spec.name}`);
      const dir = join(runDir, spec.name);
      mkdirSync(dir, { recursive: true });
      for (const f of ['index.mjs', 'index.mjs.map']) copyFileSync(join(asset.dir, f), join(dir, f));
      const event = await world.eventFileFor(spec, join(dir, 'event.json'));
      // The environment the stack gives the function, AWS_LAMBDA_FUNCTION_NAME included: its
      // dependencies are built at import, so a bundle that cannot reach them fails here.
      const result = await runInChild(join(dir, 'index.mjs'), event, world.envFor(spec));
      answers[spec.name] = String(result.outcome);
    }
    for (const spec of FUNCTIONS) {
      const expected = EXPECTED_OUTCOMES[spec.name];
      // A function the world has no expectation for still starts and answers without a server error.
      if (expected) expect(answers[spec.name], spec.name).toBe(expected);
      else expect(answers[spec.name], spec.name).toMatch(/^(ok|none|Allow|[1-4]\d\d)$/);
    }
  }, 180_000);
});

describe('secret material', () => {
  /** What a private key or secret looks like in any file of cdk.out. */
  const PATTERNS: readonly [string, RegExp][] = [
    ['a JWK private member', /["']?\b(d|p|q|dp|dq|qi|k)["']?\s*:\s*["'][A-Za-z0-9_-]{40,}["']/],
    ['a private JWK object', /privateJwk["']?\s*:\s*\{/],
    ['a PEM private key', /-----BEGIN [A-Z ]*PRIVATE KEY-----/],
    ['a SecretString in the template', /"SecretString"\s*:/],
  ];
  const scan = (text: string) => PATTERNS.filter(([, re]) => re.test(text)).map(([what]) => what);

  it('recognizes a real key set, as the secret stores it', async () => {
    const key = await generateStoredKey(new Date());
    expect(scan(JSON.stringify({ keys: [key] }))).toEqual(
      expect.arrayContaining(['a JWK private member', 'a private JWK object']),
    );
    expect(scan(JSON.stringify({ d: key.privateJwk.d }))).toEqual(['a JWK private member']);
  });

  it('finds none in any file of cdk.out: template, assets, source maps, manifests', () => {
    const found: string[] = [];
    for (const file of files(outdir)) {
      if (file.endsWith('.node')) continue; // the argon2 binary
      for (const what of scan(readFileSync(file, 'utf8'))) found.push(`${relative(outdir, file)}: ${what}`);
    }
    expect(found).toEqual([]);
    expect(files(outdir).length).toBeGreaterThan(FUNCTIONS.length * 2);
  });
});
