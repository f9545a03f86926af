import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { importJWK, jwtVerify, SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { keySetSource, parseStoredKeySet } from '../../lambdas/core/keys.ts';
import {
  type KeysResourceDeps,
  type ManagedKey,
  makeKeysResourceHandler,
} from '../../lambdas/custom-resource-keys.ts';

const PRIVATE = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:private-AbCdEf';
const PUBLIC = 'arn:aws:secretsmanager:eu-west-1:111122223333:secret:public-GhIjKl';
const RETIRE_AFTER_S = 1530;

function fakeAws(start = '2025-01-01T00:00:00Z') {
  const secrets = new Map<string, string>([
    [PRIVATE, 'cloudformation-generated-placeholder'],
    [PUBLIC, 'cloudformation-generated-placeholder'],
  ]);
  const responses: Record<string, unknown>[] = [];
  const logs: string[] = [];
  let now = new Date(start);
  const deps: KeysResourceDeps = {
    readSecret: async (arn) => secrets.get(arn),
    writeSecret: async (arn, value) => {
      secrets.set(arn, value);
    },
    respond: async (_url, body) => {
      responses.push(JSON.parse(body) as Record<string, unknown>);
    },
    now: () => now,
    log: (line) => logs.push(JSON.stringify(line)),
  };
  return {
    deps,
    secrets,
    responses,
    logs,
    advance: (seconds: number) => {
      now = new Date(now.getTime() + seconds * 1000);
    },
    privateSet: () => JSON.parse(secrets.get(PRIVATE) ?? '') as { keys: ManagedKey[] },
    publicSet: () => JSON.parse(secrets.get(PUBLIC) ?? '') as { keys: Record<string, unknown>[] },
  };
}

const base = {
  ServiceToken: 'arn:aws:lambda:eu-west-1:111122223333:function:gen',
  ResponseURL: 'https://cloudformation-custom-resource-response.example/put',
  StackId: 'arn:aws:cloudformation:eu-west-1:111122223333:stack/S/1',
  RequestId: 'req-1',
  LogicalResourceId: 'SigningKeys',
  ResourceType: 'Custom::SigningKeys',
};
const properties = (rotation = '1') => ({
  ServiceToken: base.ServiceToken,
  PrivateSecretArn: PRIVATE,
  PublicSecretArn: PUBLIC,
  Rotation: rotation,
  RetireAfterS: String(RETIRE_AFTER_S),
});
const create = (): CloudFormationCustomResourceEvent => ({
  ...base,
  RequestType: 'Create',
  ResourceProperties: properties(),
});
const update = (from: string, to: string, physicalId: string): CloudFormationCustomResourceEvent => ({
  ...base,
  RequestType: 'Update',
  PhysicalResourceId: physicalId,
  ResourceProperties: properties(to),
  OldResourceProperties: properties(from),
});

describe('the signing-key custom resource', () => {
  it('creates a current and a pre-published next key; the public secret holds public halves only', async () => {
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)(create());
    const keys = aws.privateSet().keys;
    expect(keys).toHaveLength(2);
    for (const key of keys) {
      expect(key.privateJwk).toMatchObject({ kty: 'OKP', crv: 'Ed25519' });
      expect(typeof key.privateJwk.d).toBe('string');
    }
    expect(() => parseStoredKeySet(aws.secrets.get(PRIVATE) ?? '')).not.toThrow();
    const publics = aws.publicSet().keys;
    expect(publics.map((k) => k.kid)).toEqual(keys.map((k) => k.kid));
    for (const jwk of publics)
      expect(Object.keys(jwk).sort()).toEqual(['alg', 'crv', 'kid', 'kty', 'use', 'x']);
  });

  it('answers SUCCESS with public facts only: no private member reaches CloudFormation or the log', async () => {
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)(create());
    const [response] = aws.responses;
    const keys = aws.privateSet().keys;
    expect(response).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: `signing-keys:${PRIVATE}`,
      RequestId: 'req-1',
      LogicalResourceId: 'SigningKeys',
      Data: { CurrentKid: keys[0]?.kid, NextKid: keys[1]?.kid, KeyCount: '2' },
    });
    const said = JSON.stringify(aws.responses) + aws.logs.join('\n');
    for (const key of keys) {
      expect(said).not.toContain(String(key.privateJwk.d));
      expect(said).not.toContain(String(key.privateJwk.x));
    }
    expect(said).not.toContain('"d"');
  });

  it('signs with a key that verifies against the public secret', async () => {
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)(create());
    const source = keySetSource(async () => parseStoredKeySet(aws.secrets.get(PRIVATE) ?? ''));
    const { kid, privateKey } = await source.signingKey();
    const token = await new SignJWT({}).setProtectedHeader({ alg: 'EdDSA', kid }).sign(privateKey);
    const jwk = aws.publicSet().keys.find((k) => k.kid === kid);
    await expect(jwtVerify(token, await importJWK(jwk ?? {}, 'EdDSA'))).resolves.toBeTruthy();
  });

  it('on rotation promotes the pre-published key, publishes a new next one and keeps the old one verifying', async () => {
    const aws = fakeAws();
    const handler = makeKeysResourceHandler(aws.deps);
    await handler(create());
    const [first, second] = aws.privateSet().keys;
    aws.advance(3600);
    await handler(update('1', '2', `signing-keys:${PRIVATE}`));
    const keys = aws.privateSet().keys;
    expect(keys.map((k) => k.kid)).toEqual([second?.kid, keys[1]?.kid, first?.kid]);
    expect(keys[0]?.retiredAt).toBeUndefined();
    expect(keys[1]?.retiredAt).toBeUndefined();
    expect(keys[2]?.retiredAt).toBe('2025-01-01T01:00:00.000Z');
    expect(aws.publicSet().keys.map((k) => k.kid)).toEqual(keys.map((k) => k.kid));
    expect(aws.responses[1]).toMatchObject({
      Status: 'SUCCESS',
      PhysicalResourceId: `signing-keys:${PRIVATE}`,
    });
  });

  it('drops a retired key once no token it signed can still be valid', async () => {
    const aws = fakeAws();
    const handler = makeKeysResourceHandler(aws.deps);
    const id = `signing-keys:${PRIVATE}`;
    await handler(create());
    const [first] = aws.privateSet().keys;
    await handler(update('1', '2', id));
    aws.advance(RETIRE_AFTER_S - 1);
    await handler(update('2', '3', id));
    expect(aws.privateSet().keys.map((k) => k.kid)).toContain(first?.kid);
    aws.advance(2);
    await handler(update('3', '4', id));
    expect(aws.privateSet().keys.map((k) => k.kid)).not.toContain(first?.kid);
    expect(aws.privateSet().keys).toHaveLength(4); // current, next, and the two retired within the window
  });

  it('leaves the keys alone on an update that does not rotate', async () => {
    const aws = fakeAws();
    const handler = makeKeysResourceHandler(aws.deps);
    await handler(create());
    const before = aws.secrets.get(PRIVATE);
    await handler(update('1', '1', `signing-keys:${PRIVATE}`));
    expect(aws.secrets.get(PRIVATE)).toBe(before);
    expect(aws.responses[1]).toMatchObject({ Status: 'SUCCESS' });
  });

  it('does nothing on delete but answer SUCCESS with the same physical ID', async () => {
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)({
      ...base,
      RequestType: 'Delete',
      PhysicalResourceId: 'signing-keys:old',
      ResourceProperties: properties(),
    });
    expect(aws.responses).toEqual([
      expect.objectContaining({ Status: 'SUCCESS', PhysicalResourceId: 'signing-keys:old' }),
    ]);
    expect(aws.secrets.get(PRIVATE)).toBe('cloudformation-generated-placeholder');
  });

  it('answers SUCCESS to a delete whose properties do not parse, so a failed create can roll back', async () => {
    // A create that failed on bad properties is deleted with those same properties: a
    // FAILED answer there would leave the stack stuck in DELETE_FAILED.
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)({
      ...base,
      RequestType: 'Delete',
      PhysicalResourceId: 'signing-keys:req-1',
      ResourceProperties: { ServiceToken: base.ServiceToken, RetireAfterS: 'soon' },
    });
    expect(aws.responses).toEqual([
      expect.objectContaining({ Status: 'SUCCESS', PhysicalResourceId: 'signing-keys:req-1' }),
    ]);
  });

  it('answers FAILED, with the reason, when Secrets Manager refuses, so the deployment does not hang', async () => {
    const aws = fakeAws();
    aws.deps.writeSecret = async () => {
      throw Object.assign(new Error('User is not authorized to perform secretsmanager:PutSecretValue'), {
        name: 'AccessDeniedException',
      });
    };
    await makeKeysResourceHandler(aws.deps)(create());
    expect(aws.responses).toEqual([
      expect.objectContaining({
        Status: 'FAILED',
        Reason: expect.stringContaining('AccessDeniedException'),
        Data: {},
      }),
    ]);
  });

  it('answers FAILED for missing properties', async () => {
    const aws = fakeAws();
    await makeKeysResourceHandler(aws.deps)({ ...create(), ResourceProperties: { ServiceToken: 'x' } });
    expect(aws.responses[0]).toMatchObject({
      Status: 'FAILED',
      Reason: expect.stringContaining('PrivateSecretArn'),
    });
  });
});
