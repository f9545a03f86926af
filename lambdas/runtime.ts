import { connectionsApi, regionOfEndpoint } from './aws/connections-api.ts';
import { dynamoEndpoint, leanDynamoClient } from './aws/dynamodb.ts';
import { awsKeySource } from './aws/key-source.ts';
import { credentialsFromEnv } from './aws/signed-http.ts';
import { sqsQueue } from './aws/sqs.ts';
import { stdoutAudit } from './core/audit.ts';
import { systemClock } from './core/clock.ts';
import type { Deps } from './core/deps.ts';
import { settingsFromEnv } from './core/settings.ts';
import { tableNamesFromEnv } from './core/tables.ts';

let built: Deps | undefined;

/**
 * The real dependencies of a Lambda container, built once: settings parsed and
 * checked, one DynamoDB client, the key source, the clock and the audit log. Every AWS
 * call is signed with the execution role's credentials, which Lambda puts in the
 * environment, in the function's region.
 */
export function runtime(env: NodeJS.ProcessEnv = process.env): Deps {
  if (built) return built;
  const settings = settingsFromEnv(env, 'aws');
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION must be set to reach DynamoDB');
  const db = leanDynamoClient({
    endpoint: dynamoEndpoint(env, region),
    region,
    credentials: credentialsFromEnv(env),
  });
  built = {
    settings,
    db,
    tables: tableNamesFromEnv(env),
    keys: awsKeySource(env),
    clock: systemClock,
    audit: stdoutAudit(systemClock),
    ...(env.WS_MANAGEMENT_ENDPOINT ? { api: lambdaConnectionsApi(env.WS_MANAGEMENT_ENDPOINT, env) } : {}),
    ...(env.FANOUT_QUEUE_URL ? { queue: lambdaQueue(env.FANOUT_QUEUE_URL, env) } : {}),
  };
  return built;
}

/**
 * `@connections` signed with the execution role's credentials, which Lambda puts in the
 * environment, in the function's region: no credential provider chain (SSO, STS, ini files) is
 * loaded or bundled for it.
 */
function lambdaConnectionsApi(endpoint: string, env: NodeJS.ProcessEnv) {
  const region = env.AWS_REGION || regionOfEndpoint(endpoint);
  if (!region) throw new Error('AWS_REGION must be set to sign @connections requests');
  return connectionsApi({ endpoint, region, credentials: credentialsFromEnv(env) });
}

/** The fan-out queue (SQS over the same lean signed client), with the execution role's credentials. */
function lambdaQueue(queueUrl: string, env: NodeJS.ProcessEnv) {
  const region = env.AWS_REGION || /^sqs\.([a-z0-9-]+)\./.exec(new URL(queueUrl).hostname)?.[1];
  if (!region) throw new Error('AWS_REGION must be set to send to the fan-out queue');
  return sqsQueue({ queueUrl, region, credentials: credentialsFromEnv(env) });
}

/**
 * The exported Lambda `handler` of a route module: builds the route from `runtime()`
 * once per container. In Lambda the build runs at import, so bad settings fail the
 * cold start instead of a request; elsewhere (tests, the local system import the
 * module for its `make…Handler`) nothing is built until the first call.
 */
export function lambdaEntry<E, R>(make: (deps: Deps) => (event: E) => Promise<R>): (event: E) => Promise<R> {
  let route: ((event: E) => Promise<R>) | undefined;
  const get = () => {
    route ??= make(runtime());
    return route;
  };
  if (process.env.AWS_LAMBDA_FUNCTION_NAME) get();
  return (event) => get()(event);
}
