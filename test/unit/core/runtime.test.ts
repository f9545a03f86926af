import { describe, expect, it, vi } from 'vitest';
import { awsKeySource } from '../../../lambdas/aws/key-source.ts';
import { envName, SETTING_NAMES } from '../../../lambdas/core/settings.ts';
import { TABLE_KEYS, tableEnvName } from '../../../lambdas/core/tables.ts';
import { runtime } from '../../../lambdas/runtime.ts';

describe('the Lambda runtime', () => {
  it('starts a function that holds no keys (no secret ARN in its environment) and refuses to sign or verify there', async () => {
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'ASIAROLE',
      AWS_SECRET_ACCESS_KEY: 'role-secret',
      TOKEN_ISSUER: 'https://x.example',
      TOKEN_AUDIENCE: 'urn:x',
      ALLOWED_ORIGINS: 'https://app.example.com',
    };
    for (const key of TABLE_KEYS) env[tableEnvName(key)] = `t-${key}`;
    const deps = runtime(env);
    expect(deps.tables.connections).toBe('t-connections');
    expect(deps.api).toBeUndefined();
    await expect(deps.keys.signingKey()).rejects.toMatchObject({ code: 'internal' });
    await expect(deps.keys.publicKeys()).rejects.toMatchObject({ code: 'internal' });
    expect(SETTING_NAMES.map(envName)).toContain('ALLOWED_ORIGINS');
  });

  it('gives a function whose environment names the fan-out queue a queue to send to, and others none', () => {
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: 'eu-west-1',
      AWS_ACCESS_KEY_ID: 'AKIDEXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'not-a-real-secret',
      TOKEN_ISSUER: 'https://x.example',
      TOKEN_AUDIENCE: 'urn:x',
      ALLOWED_ORIGINS: 'https://app.example.com',
      FANOUT_QUEUE_URL: 'https://sqs.eu-west-1.amazonaws.com/000000000000/jobs',
    };
    for (const key of TABLE_KEYS) env[tableEnvName(key)] = `t-${key}`;
    vi.resetModules();
    return import('../../../lambdas/runtime.ts').then(({ runtime: fresh }) => {
      expect(typeof fresh(env).queue?.send).toBe('function');
    });
  });

  it('fails the cold start, naming what is missing, without the credentials or region Lambda sets', async () => {
    const env: NodeJS.ProcessEnv = {
      TOKEN_ISSUER: 'https://x.example',
      TOKEN_AUDIENCE: 'urn:x',
      ALLOWED_ORIGINS: 'https://app.example.com',
    };
    for (const key of TABLE_KEYS) env[tableEnvName(key)] = `t-${key}`;
    // runtime() builds once per container: a fresh copy of the module for each cold start.
    const fresh = async () => {
      vi.resetModules();
      return (await import('../../../lambdas/runtime.ts')).runtime;
    };
    expect(
      (await fresh()).bind(null, { ...env, AWS_ACCESS_KEY_ID: 'a', AWS_SECRET_ACCESS_KEY: 's' }),
    ).toThrow(/AWS_REGION/);
    expect((await fresh()).bind(null, { ...env, AWS_REGION: 'us-east-1' })).toThrow(
      /AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY/,
    );
  });

  it('gives a verifying function public keys only: it can never sign', async () => {
    const source = awsKeySource({ PUBLIC_KEYS_SECRET_ARN: 'arn:aws:secretsmanager:us-east-1:0:secret:pub' });
    await expect(source.signingKey()).rejects.toMatchObject({ code: 'internal' });
  });
});
