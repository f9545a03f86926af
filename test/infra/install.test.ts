import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ARGON2_BINARY, argon2Version } from '../../lib/argon2.ts';
import { REPO_ROOT } from '../../lib/paths.ts';

const run = promisify(execFile);

/** No registry: offline, and any registry npm might still try points at a closed loopback port. */
const OFFLINE = { ...process.env, npm_config_offline: 'true', npm_config_registry: 'http://127.0.0.1:9/' };

describe('npm ci', () => {
  it('fetches the linux-arm64 argon2 package during install (postinstall), not on the first test or synth', () => {
    const manifest = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as {
      scripts: Record<string, string>;
    };
    expect(manifest.scripts.postinstall).toBe('node scripts/install-argon2-arm64.mjs');
  });

  it('leaves the package in .build/, where the install script finds it again with no registry', async () => {
    const { stderr } = await run('node', ['scripts/install-argon2-arm64.mjs'], {
      cwd: REPO_ROOT,
      env: OFFLINE,
      timeout: 20_000,
    });
    expect(stderr).not.toContain('warning');
    const prefix = join(REPO_ROOT, '.build', `argon2-${argon2Version()}-linux-arm64-gnu`);
    expect(
      existsSync(join(prefix, 'node_modules', '@node-rs', 'argon2-linux-arm64-gnu', ARGON2_BINARY)),
    ).toBe(true);
  });
});
