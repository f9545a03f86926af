import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { ConnectionsApi } from '../../lambdas/core/deps.ts';

const isGone = (err: unknown) => (err as { name?: string } | undefined)?.name === 'GoneException';

/**
 * `@connections` over the AWS SDK client: what the functions used before the signed poster of
 * lambdas/aws/connections-api.ts, kept as the reference that tests and the bench hold it to.
 */
export function sdkConnectionsApi(client: ApiGatewayManagementApiClient): ConnectionsApi {
  const gone = async (call: Promise<unknown>) => {
    try {
      await call;
      return true;
    } catch (err) {
      if (isGone(err)) return false;
      throw err;
    }
  };
  const encoder = new TextEncoder();
  return {
    post: (id, data) =>
      gone(client.send(new PostToConnectionCommand({ ConnectionId: id, Data: encoder.encode(data) }))),
    close: (id) => gone(client.send(new DeleteConnectionCommand({ ConnectionId: id }))),
    exists: (id) => gone(client.send(new GetConnectionCommand({ ConnectionId: id }))),
  };
}

export function sdkManagementClient(
  endpoint: string,
  extra: Partial<ConstructorParameters<typeof ApiGatewayManagementApiClient>[0]> = {},
): ApiGatewayManagementApiClient {
  return new ApiGatewayManagementApiClient({ endpoint, ...extra });
}
