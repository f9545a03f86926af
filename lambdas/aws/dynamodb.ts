import type { DynamoDBClient, ServiceInputTypes, ServiceOutputTypes } from '@aws-sdk/client-dynamodb';
import { AwsJson1_0Protocol } from '@aws-sdk/core/protocols';
import { DynamoDBJsonCodec2 } from '@aws-sdk/dynamodb-codec';
import { Client } from '@smithy/core/client';
import { parseUrl } from '@smithy/core/protocols';
import { isServerError, isThrottlingError, isTransientError } from '@smithy/core/retry';
import { getSchemaSerdePlugin } from '@smithy/core/schema';
import { fromBase64, fromUtf8, toBase64, toUtf8 } from '@smithy/core/serde';
import { type HttpRequest, HttpResponse } from '@smithy/core/transport';
import { type AwsCredentials, type SignedHttp, signedHttp } from './signed-http.ts';

export interface LeanDynamoOptions {
  /** `https://dynamodb.<region>.amazonaws.com`, or a local endpoint (dynalite). */
  readonly endpoint: string;
  readonly region: string;
  readonly credentials: AwsCredentials;
  /** Tries in all for throttling, server and connection failures (default 4, as the SDK's DynamoDB client). */
  readonly maxAttempts?: number;
  /** The first backoff before a retry, doubled each time, with full jitter (default 25 ms, as the SDK's). */
  readonly baseDelayMs?: number;
  readonly sleep?: (ms: number) => Promise<void>;
}

/** The regional DynamoDB endpoint, unless the environment names another (as the SDK reads it). */
export function dynamoEndpoint(env: NodeJS.ProcessEnv, region: string): string {
  const configured = env.DYNAMODB_ENDPOINT || env.AWS_ENDPOINT_URL_DYNAMODB || env.AWS_ENDPOINT_URL;
  if (configured) return configured;
  return `https://dynamodb.${region}.amazonaws.com${region.startsWith('cn-') ? '.cn' : ''}`;
}

/** A BatchGetItem may answer up to 16 MB of items, which JSON makes larger. */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
/** No single backoff longer than this: the functions' timeout is 10 s. */
const MAX_DELAY_MS = 1000;

/**
 * The functions' DynamoDB client (on Lambda, and the local system's), made of the SDK's own
 * parts: its `Client` class, the very commands of `@aws-sdk/client-dynamodb` with their schemas,
 * its JSON 1.0 protocol and DynamoDB codec, and its error classification for retries; signed and
 * sent by signed-http.ts (SigV4, a keep-alive agent). Left out is what `new DynamoDBClient()`
 * adds around them and no command of ours needs: the credential provider chain (the caller
 * passes credentials: on Lambda, the execution role's from the environment), endpoint rule sets
 * and partitions (the endpoint is fixed), config-file and defaults-mode loading, user agent,
 * recursion detection, endpoint discovery, the SDK's HTTP handler and its adaptive retry. Errors
 * keep the SDK's shape (`name` such as `ConditionalCheckFailedException`, `$metadata`, `$fault`,
 * the answer's fields), as plain `Error`s rather than the service's classes.
 *
 * It is typed as the SDK client it stands in for: every command's `send` works the same, and so
 * does middleware added to its stack; the full client's `config` is not there (nothing in
 * `lambdas/` reads it).
 *
 * @example
 * const db = leanDynamoClient({ endpoint: dynamoEndpoint(process.env, 'eu-west-1'), region: 'eu-west-1', credentials });
 * const { Item } = await db.send(new GetItemCommand({ TableName, Key }));
 */
export function leanDynamoClient(options: LeanDynamoOptions): DynamoDBClient {
  const url = new URL(options.endpoint);
  const http = signedHttp({
    endpoint: url.origin,
    service: 'dynamodb',
    region: options.region,
    credentials: options.credentials,
    maxBodyBytes: MAX_ANSWER_BYTES,
    // As the SDK's DynamoDB client signs: the local store checks the body against this header.
    signBodyHash: true,
  });
  const config = clientConfig(options.region, url, http);
  const client = new Client<
    Record<string, never>,
    ServiceInputTypes,
    ServiceOutputTypes,
    typeof config & { requestHandler: typeof config.requestHandler }
  >(config);
  client.middlewareStack.use(getSchemaSerdePlugin(config));
  client.middlewareStack.add(retryMiddleware(options), {
    step: 'finalizeRequest',
    name: 'leanRetryMiddleware',
    tags: ['RETRY'],
  });
  return client as unknown as DynamoDBClient;
}

/** What the SDK's `Client` and its schema serde read: DynamoDB's protocol, a fixed endpoint, the codecs. */
function clientConfig(region: string, url: URL, http: SignedHttp) {
  const endpointV1 = {
    protocol: url.protocol,
    hostname: url.hostname,
    ...(url.port ? { port: Number(url.port) } : {}),
    path: '/',
  };
  return {
    apiVersion: '2012-08-10',
    serviceId: 'DynamoDB',
    region,
    protocol: new AwsJson1_0Protocol({
      defaultNamespace: 'com.amazonaws.dynamodb',
      serviceTarget: 'DynamoDB_20120810',
      // No error registry: the service's exception classes would be most of the client.
      errorTypeRegistries: [],
      jsonCodec: new DynamoDBJsonCodec2(),
    }),
    // The endpoint is fixed: no rule set, no lookup of config files or the environment per call.
    isCustomEndpoint: true,
    endpoint: async () => endpointV1,
    endpointProvider: () => ({ url }),
    base64Decoder: fromBase64,
    base64Encoder: toBase64,
    utf8Decoder: fromUtf8,
    utf8Encoder: toUtf8,
    urlParser: parseUrl,
    disableHostPrefix: false,
    // Every answer's body arrives whole (below), never as a stream.
    streamCollector: async (body: unknown) => {
      if (body instanceof Uint8Array) return body;
      throw new TypeError('a DynamoDB answer arrived as a stream');
    },
    requestHandler: requestHandlerOver(http),
  };
}

/** The SDK's request handler, as signed-http.ts sends: the serialized request out, the whole answer back. */
function requestHandlerOver(http: SignedHttp) {
  return {
    async handle(request: HttpRequest): Promise<{ response: HttpResponse }> {
      const body =
        typeof request.body === 'string' ? Buffer.from(request.body) : (request.body as Uint8Array);
      const answer = await http.send(
        { method: 'POST', path: request.path, headers: request.headers, body },
        { keepBody: true },
      );
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(answer.headers)) {
        if (value !== undefined) headers[name] = Array.isArray(value) ? value.join(', ') : value;
      }
      return {
        response: new HttpResponse({
          statusCode: answer.status,
          headers,
          body: Buffer.from(answer.body, 'utf8'),
        }),
      };
    },
    destroy: () => http.destroy(),
  };
}

/**
 * Throttling, 5xx and connection failures are tried again with exponential backoff and full
 * jitter, as the SDK's standard mode classifies them; anything else (a failed condition, a
 * validation error) is final at once.
 */
function retryMiddleware(options: LeanDynamoOptions) {
  const attempts = options.maxAttempts ?? 4;
  const base = options.baseDelayMs ?? 25;
  const sleep = options.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  return <Args, Result>(next: (args: Args) => Promise<Result>) =>
    async (args: Args): Promise<Result> => {
      for (let attempt = 1; ; attempt++) {
        try {
          return await next(args);
        } catch (err) {
          const e = err as Parameters<typeof isTransientError>[0];
          const retryable = isThrottlingError(e) || isTransientError(e) || isServerError(e);
          if (!retryable || attempt >= attempts) throw err;
          await sleep(Math.floor(Math.random() * Math.min(MAX_DELAY_MS, base * 2 ** attempt)));
        }
      }
    };
}
