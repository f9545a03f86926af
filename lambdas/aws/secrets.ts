import {
  type Answer,
  type AwsCredentials,
  credentialsFromEnv,
  type SignedHttp,
  signedHttp,
} from './signed-http.ts';

/** Reads a secret's current string value by ARN. */
export type SecretReader = (arn: string) => Promise<string>;

/** The Secrets Manager endpoint of a region, unless the environment names another (as the SDK reads it). */
export function secretsEndpoint(env: NodeJS.ProcessEnv, region: string): string {
  const configured = env.AWS_ENDPOINT_URL_SECRETS_MANAGER || env.AWS_ENDPOINT_URL;
  if (configured) return configured;
  return `https://secretsmanager.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

/**
 * Secrets Manager's GetSecretValue (JSON 1.1 over HTTPS, SigV4 as `secretsmanager`), the one call
 * the key source makes, with the execution role's credentials from the environment: without the
 * SDK client, whose bundle would outweigh the rest of most functions. Built on first use, so a
 * function that holds no keys needs no credentials.
 */
export function secretReaderFromEnv(env: NodeJS.ProcessEnv): SecretReader {
  let http: SignedHttp | undefined;
  return async (arn) => {
    http ??= secretsHttp(env);
    const answer = await http.send(
      {
        method: 'POST',
        path: '/',
        headers: {
          'content-type': 'application/x-amz-json-1.1',
          'x-amz-target': 'secretsmanager.GetSecretValue',
        },
        body: new TextEncoder().encode(JSON.stringify({ SecretId: arn })),
      },
      { keepBody: true },
    );
    return secretStringOf(answer);
  };
}

function secretsHttp(env: NodeJS.ProcessEnv): SignedHttp {
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION must be set to read secrets');
  const credentials: AwsCredentials = credentialsFromEnv(env);
  return signedHttp({
    endpoint: secretsEndpoint(env, region),
    service: 'secretsmanager',
    region,
    credentials,
  });
}

/** GetSecretValue's `SecretString`; an error named by the service's `__type` for any other answer. */
function secretStringOf(answer: Answer): string {
  let parsed: { SecretString?: unknown; __type?: unknown };
  try {
    parsed = JSON.parse(answer.body) as typeof parsed;
  } catch {
    parsed = {};
  }
  if (answer.status !== 200) {
    // `__type` is `ResourceNotFoundException` or `com.amazonaws...#AccessDeniedException`.
    const type = typeof parsed.__type === 'string' ? (parsed.__type.split('#').pop() ?? '') : '';
    const err = new Error(`Secrets Manager answered ${answer.status}`);
    err.name = /^[A-Za-z]{1,64}$/.test(type) ? type : 'SecretsManagerError';
    throw err;
  }
  if (typeof parsed.SecretString !== 'string' || parsed.SecretString === '') {
    throw new Error('the key secret is empty');
  }
  return parsed.SecretString;
}
