import { afterEach, describe, expect, it } from 'vitest';
import { awsKeySource } from '../../lambdas/aws/key-source.ts';
import { secretReaderFromEnv, secretsEndpoint } from '../../lambdas/aws/secrets.ts';
import { generateStoredKey, publicJwkOf } from '../../lambdas/core/keys.ts';
import { expectedSignature, signatureOf, standIn } from '../kit/sigv4.ts';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const clean of cleanups.splice(0).reverse()) await clean();
});

const ENV = {
  AWS_REGION: 'eu-west-1',
  AWS_ACCESS_KEY_ID: 'AKID',
  AWS_SECRET_ACCESS_KEY: 'secret',
  AWS_SESSION_TOKEN: 'tok',
};

describe('reading a secret from Secrets Manager', () => {
  it('sends GetSecretValue as the SDK does, signed for secretsmanager, and returns the string', async () => {
    const { url, seen } = await standIn(cleanups, (_req, body, res) => {
      const { SecretId } = JSON.parse(body.toString()) as { SecretId: string };
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ ARN: SecretId, Name: 'n', SecretString: `value of ${SecretId}` }));
    });
    const read = secretReaderFromEnv({ ...ENV, AWS_ENDPOINT_URL_SECRETS_MANAGER: url });
    expect(await read('arn:aws:secretsmanager:eu-west-1:1:secret:pub')).toBe(
      'value of arn:aws:secretsmanager:eu-west-1:1:secret:pub',
    );
    const [{ req, body }] = seen as [(typeof seen)[number]];
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/');
    expect(req.headers['x-amz-target']).toBe('secretsmanager.GetSecretValue');
    expect(req.headers['content-type']).toBe('application/x-amz-json-1.1');
    expect(req.headers['x-amz-security-token']).toBe('tok');
    expect(String(req.headers.authorization)).toMatch(
      /Credential=AKID\/\d{8}\/eu-west-1\/secretsmanager\/aws4_request/,
    );
    expect(signatureOf(req)).toBe(expectedSignature(req, body, 'secret'));
  });

  it('fails with the error Secrets Manager names, and on an empty or missing value', async () => {
    const answers = [
      [400, { __type: 'ResourceNotFoundException', Message: 'no such secret' }],
      [400, { __type: 'com.amazonaws.secretsmanager#AccessDeniedException' }],
      [500, 'not json'],
      [200, { SecretString: '' }],
      [200, { SecretBinary: 'AAAA' }],
    ] as const;
    let i = 0;
    const { url } = await standIn(cleanups, (_req, _body, res) => {
      const [status, body] = answers[i++] ?? [500, ''];
      res.writeHead(status, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(typeof body === 'string' ? body : JSON.stringify(body));
    });
    const read = secretReaderFromEnv({ ...ENV, AWS_ENDPOINT_URL_SECRETS_MANAGER: url });
    const names: string[] = [];
    for (const _ of answers)
      names.push(
        await read('arn:x').then(
          () => 'read',
          (e: Error) => `${e.name}: ${e.message}`,
        ),
      );
    expect(names).toEqual([
      'ResourceNotFoundException: Secrets Manager answered 400',
      'AccessDeniedException: Secrets Manager answered 400',
      'SecretsManagerError: Secrets Manager answered 500',
      'Error: the key secret is empty',
      'Error: the key secret is empty',
    ]);
  });

  it('gives a verifying function its public keys from the secret, and no way to sign', async () => {
    const key = await generateStoredKey(new Date());
    const { url } = await standIn(cleanups, (_req, _body, res) => {
      res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ SecretString: JSON.stringify({ keys: [publicJwkOf(key)] }) }));
    });
    const source = awsKeySource({
      ...ENV,
      AWS_ENDPOINT_URL_SECRETS_MANAGER: url,
      PUBLIC_KEYS_SECRET_ARN: 'arn:pub',
    });
    expect((await source.publicKeys()).map((k) => k.kid)).toEqual([key.kid]);
    await expect(source.signingKey()).rejects.toMatchObject({ code: 'internal' });
  });

  it("finds the region's endpoint, or the one the environment names", () => {
    expect(secretsEndpoint({}, 'eu-west-1')).toBe('https://secretsmanager.eu-west-1.amazonaws.com');
    expect(secretsEndpoint({}, 'cn-north-1')).toBe('https://secretsmanager.cn-north-1.amazonaws.com.cn');
    expect(secretsEndpoint({ AWS_ENDPOINT_URL: 'http://127.0.0.1:4566' }, 'eu-west-1')).toBe(
      'http://127.0.0.1:4566',
    );
    expect(
      secretsEndpoint(
        { AWS_ENDPOINT_URL: 'http://a', AWS_ENDPOINT_URL_SECRETS_MANAGER: 'http://b' },
        'eu-west-1',
      ),
    ).toBe('http://b');
  });

  it('needs no credentials until a secret is read, and then refuses to go on without them', async () => {
    const read = secretReaderFromEnv({ AWS_REGION: 'eu-west-1' });
    await expect(read('arn:x')).rejects.toThrow(/AWS_ACCESS_KEY_ID/);
  });
});
