import { request } from 'node:https';
import {
  GetSecretValueCommand,
  PutSecretValueCommand,
  SecretsManagerClient,
} from '@aws-sdk/client-secrets-manager';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { generateStoredKey, parseStoredKeySet, publicJwkOf, type StoredKey } from './core/keys.ts';

/**
 * The CloudFormation custom resource that creates and rotates the Ed25519 signing keys
 * inside AWS, at deploy time. The private key set goes to one secret (readable by the
 * token-issuing functions alone), its public half to another; neither ever passes through
 * the template, `cdk.out` or this resource's response.
 *
 * Key set layout (the first key signs, every key verifies):
 *   [current, next, ...retired]
 * `next` is published (in both sets) one rotation before it signs. Functions cache keys for
 * up to 10 minutes, so when a rotation promotes `next`, every warm verifier already holds
 * its public key. The key it replaces is kept, marked `retiredAt`, until no token it signed
 * can still be valid (`RetireAfterS`), then dropped at a later rotation.
 */

interface ResourceProps {
  readonly PrivateSecretArn: string;
  readonly PublicSecretArn: string;
  /** Changing it rotates (the `keyRotation` context key). */
  readonly Rotation: string;
  /** Seconds a retired key keeps verifying: longest token lifetime + clock skew + key cache time. */
  readonly RetireAfterS: string;
}

/** A stored key as this resource keeps it: `retiredAt` marks a key that no longer signs. */
export interface ManagedKey extends StoredKey {
  retiredAt?: string;
}

export interface KeysResourceDeps {
  readSecret(arn: string): Promise<string | undefined>;
  writeSecret(arn: string, value: string): Promise<void>;
  respond(url: string, body: string): Promise<void>;
  now(): Date;
  log(line: Record<string, unknown>): void;
}

interface Outcome {
  readonly physicalId: string;
  readonly data: Record<string, string>;
}

/** The next key set: promote `next`, pre-publish a new `next`, retire the old current key, drop expired ones. */
export async function rotateKeySet(
  existing: readonly ManagedKey[] | undefined,
  now: Date,
  retireAfterS: number,
): Promise<ManagedKey[]> {
  if (!existing || existing.length === 0) return [await generateStoredKey(now), await generateStoredKey(now)];
  const [current, maybeNext, ...older] = existing;
  const next = maybeNext && maybeNext.retiredAt === undefined ? maybeNext : undefined;
  const retired = [...(next ? older : [maybeNext, ...older])].filter((k): k is ManagedKey => k !== undefined);
  const promoted: ManagedKey = next ? withoutRetirement(next) : await generateStoredKey(now);
  const stillValid = [
    ...(current ? [{ ...current, retiredAt: now.toISOString() }] : []),
    ...retired.filter((k) => Date.parse(k.retiredAt ?? k.createdAt) + retireAfterS * 1000 > now.getTime()),
  ];
  return [promoted, await generateStoredKey(now), ...stillValid];
}

function withoutRetirement(key: ManagedKey): ManagedKey {
  const { retiredAt: _retiredAt, ...rest } = key;
  return rest;
}

function readKeySet(text: string | undefined): ManagedKey[] | undefined {
  if (text === undefined) return undefined;
  try {
    return parseStoredKeySet(text).keys as ManagedKey[];
  } catch {
    return undefined; // the secret's placeholder value before the first key set
  }
}

function parseProps(raw: Record<string, unknown>): ResourceProps {
  const text = (name: keyof ResourceProps) => {
    const value = raw[name];
    if (typeof value !== 'string' || value === '') throw new Error(`property ${name} is required`);
    return value;
  };
  const props = {
    PrivateSecretArn: text('PrivateSecretArn'),
    PublicSecretArn: text('PublicSecretArn'),
    Rotation: text('Rotation'),
    RetireAfterS: text('RetireAfterS'),
  };
  if (!/^\d+$/.test(props.RetireAfterS)) throw new Error('property RetireAfterS must be whole seconds');
  return props;
}

async function apply(deps: KeysResourceDeps, event: CloudFormationCustomResourceEvent): Promise<Outcome> {
  // Delete first: nothing to parse or do (the secrets go with the stack), and a create that
  // failed on bad properties is rolled back by a delete carrying the same bad properties.
  if (event.RequestType === 'Delete') return { physicalId: event.PhysicalResourceId, data: {} };
  const props = parseProps(event.ResourceProperties);
  const physicalId = `signing-keys:${props.PrivateSecretArn}`;

  const existing = readKeySet(await deps.readSecret(props.PrivateSecretArn));
  const old = event.RequestType === 'Update' ? (event.OldResourceProperties as Partial<ResourceProps>) : {};
  const rotate =
    event.RequestType === 'Create' ||
    existing === undefined ||
    old.Rotation !== props.Rotation ||
    old.PrivateSecretArn !== props.PrivateSecretArn;
  const keys = rotate ? await rotateKeySet(existing, deps.now(), Number(props.RetireAfterS)) : existing;

  if (rotate) {
    // Public first: a verifier may learn a key before any signer uses it, never after.
    await deps.writeSecret(props.PublicSecretArn, JSON.stringify({ keys: keys.map(publicJwkOf) }));
    await deps.writeSecret(props.PrivateSecretArn, JSON.stringify({ keys }));
  }
  const data = {
    CurrentKid: keys[0]?.kid ?? '',
    NextKid: keys[1]?.kid ?? '',
    KeyCount: String(keys.length),
  };
  deps.log({ level: 'info', event: rotate ? 'keys.rotated' : 'keys.unchanged', ...data });
  return { physicalId, data };
}

/**
 * The custom resource handler. It always answers CloudFormation (a missing answer would
 * hang the deployment for an hour); a failure answers FAILED with the error message only.
 */
export function makeKeysResourceHandler(deps: KeysResourceDeps) {
  return async (event: CloudFormationCustomResourceEvent): Promise<void> => {
    let status: 'SUCCESS' | 'FAILED' = 'SUCCESS';
    let reason = '';
    let outcome: Outcome = {
      physicalId:
        'PhysicalResourceId' in event ? event.PhysicalResourceId : `signing-keys:${event.RequestId}`,
      data: {},
    };
    try {
      outcome = await apply(deps, event);
    } catch (err) {
      status = 'FAILED';
      reason = err instanceof Error ? `${err.name}: ${err.message}`.slice(0, 500) : 'unknown error';
      deps.log({ level: 'error', event: 'keys.failed', reason });
    }
    await deps.respond(
      event.ResponseURL,
      JSON.stringify({
        Status: status,
        Reason: reason || undefined,
        PhysicalResourceId: outcome.physicalId,
        StackId: event.StackId,
        RequestId: event.RequestId,
        LogicalResourceId: event.LogicalResourceId,
        Data: outcome.data,
      }),
    );
  };
}

let client: SecretsManagerClient | undefined;
const secrets = () => {
  client ??= new SecretsManagerClient({});
  return client;
};

/** PUT the answer to CloudFormation's pre-signed S3 URL (the body must go with no content type). */
function putResponse(url: string, body: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'PUT', headers: { 'content-type': '', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.on('end', () =>
          (res.statusCode ?? 500) < 300 ? resolve() : reject(new Error(`response PUT got ${res.statusCode}`)),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error('response PUT timed out')));
    req.end(body);
  });
}

export const handler = makeKeysResourceHandler({
  readSecret: async (arn) =>
    (await secrets().send(new GetSecretValueCommand({ SecretId: arn }))).SecretString,
  writeSecret: async (arn, value) => {
    await secrets().send(new PutSecretValueCommand({ SecretId: arn, SecretString: value }));
  },
  respond: putResponse,
  now: () => new Date(),
  log: (line) => {
    const time = new Date().toISOString();
    process.stdout.write(`${JSON.stringify({ ...line, time, timestamp: time })}\n`);
  },
});
