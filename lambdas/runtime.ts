import { connectionsApi } from './aws/connections-api.ts';
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
  // One region and one set of credentials for every AWS client of the container.
  const region = env.AWS_REGION || env.AWS_DEFAULT_REGION;
  if (!region) throw new Error('AWS_REGION must be set to reach DynamoDB');
  const signing = { region, credentials: credentialsFromEnv(env) };
  const db = leanDynamoClient({ endpoint: dynamoEndpoint(env, region), ...signing });
  built = {
    settings,
    db,
    tables: tableNamesFromEnv(env),
    keys: awsKeySource(env),
    clock: systemClock,
    audit: stdoutAudit(systemClock),
    // `@connections` and the fan-out queue, signed with the execution role's credentials, which
    // Lambda puts in the environment: no credential provider chain (SSO, STS, ini files) is
    // loaded or bundled for them.
    ...(env.WS_MANAGEMENT_ENDPOINT
      ? { api: connectionsApi({ endpoint: env.WS_MANAGEMENT_ENDPOINT, ...signing }) }
      : {}),
    ...(env.FANOUT_QUEUE_URL ? { queue: sqsQueue({ queueUrl: env.FANOUT_QUEUE_URL, ...signing }) } : {}),
  };
  return built;
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
