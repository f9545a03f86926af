import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { synth } from './support.ts';

interface Finding {
  readonly Filename: string;
  readonly Level: 'Error' | 'Warning' | 'Informational';
  readonly Message: string;
  readonly Rule: { readonly Id: string };
  readonly Location: { readonly Path: readonly (string | number)[] };
}

/** The templates as deployed by default and with every optional feature on (domains, concurrency, e-mail). */
function templates(): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'jwt-realtime-cfn-lint-'));
  const variants: Record<string, Record<string, unknown>> = {
    default: {},
    everything: {
      wsDomainName: 'ws.chat.example.org',
      httpDomainName: 'api.chat.example.org',
      certificateArn: 'arn:aws:acm:eu-west-1:123456789012:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789',
      allowedOrigins: 'https://chat.example.org',
      alarmEmail: 'ops@example.org',
      reservedConcurrencyPasswords: 20,
      reservedConcurrencyHandshake: 200,
      reservedConcurrencyMessages: 300,
      reservedConcurrencyHttp: 50,
    },
  };
  return Object.entries(variants).map(([name, context]) => {
    const file = join(dir, `${name}.template.json`);
    writeFileSync(file, JSON.stringify(synth({ context }).template.toJSON(), null, 1));
    return file;
  });
}

describe('cfn-lint', () => {
  it('finds no error in the synthesized templates', () => {
    const files = templates();
    const run = spawnSync('cfn-lint', ['--format', 'json', '--', ...files], {
      encoding: 'utf8',
      timeout: 170_000,
    });
    if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(
        'cfn-lint is not on PATH. It is part of the machine image (pip install cfn-lint==1.51.*); ' +
          'install it rather than skipping this check.',
      );
    }
    if (run.error) throw run.error;
    // Exit status is a bit mask: 2 errors, 4 warnings, 8 informational; 1 means cfn-lint itself failed.
    expect(run.status === null ? 'timed out' : run.status & 1, run.stderr).toBe(0);
    const findings = JSON.parse(run.stdout || '[]') as Finding[];
    const errors = findings
      .filter((f) => f.Level === 'Error')
      .map((f) => `${f.Rule.Id} ${f.Location.Path.join('/')}: ${f.Message}`);
    expect(errors).toEqual([]);
    expect(run.status === null ? -1 : run.status & 2).toBe(0);
  }, 180_000);
});
