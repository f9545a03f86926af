import { afterEach, describe, expect, it } from 'vitest';
import { TABLE_KEYS, tableEnvName } from '../../lambdas/core/tables.ts';
import { runtime } from '../../lambdas/runtime.ts';
import { expectedSignature, signatureOf, standIn } from '../kit/sigv4.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

describe("a function's runtime", () => {
  it("posts to sockets signed with the environment's credentials, in the function's region", async () => {
    const { url, seen } = await standIn(cleanups, (_req, _body, res) => {
      res.writeHead(200, { 'content-length': 0 });
      res.end();
    });
    const env: NodeJS.ProcessEnv = {
      AWS_REGION: 'ap-southeast-2',
      AWS_ACCESS_KEY_ID: 'ASIAROLE',
      AWS_SECRET_ACCESS_KEY: 'role-secret',
      AWS_SESSION_TOKEN: 'role-session',
      TOKEN_ISSUER: 'https://x.example',
      TOKEN_AUDIENCE: 'urn:x',
      ALLOWED_ORIGINS: 'https://app.example.com',
      WS_MANAGEMENT_ENDPOINT: `${url}/prod`,
    };
    for (const key of TABLE_KEYS) env[tableEnvName(key)] = `t-${key}`;
    const deps = runtime(env);
    expect(await deps.api?.post('AbC123=', '{"type":"pong"}')).toBe(true);
    const [{ req, body }] = seen as [(typeof seen)[number]];
    expect(req.url).toBe('/prod/@connections/AbC123%3D');
    expect(String(req.headers.authorization)).toMatch(
      /Credential=ASIAROLE\/\d{8}\/ap-southeast-2\/execute-api\/aws4_request/,
    );
    expect(req.headers['x-amz-security-token']).toBe('role-session');
    expect(signatureOf(req)).toBe(expectedSignature(req, body, 'role-secret'));
  });
});
