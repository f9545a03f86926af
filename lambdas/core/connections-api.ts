import {
  ApiGatewayManagementApiClient,
  DeleteConnectionCommand,
  GetConnectionCommand,
  PostToConnectionCommand,
} from '@aws-sdk/client-apigatewaymanagementapi';
import type { ConnectionsApi } from './deps.ts';

const isGone = (err: unknown) => (err as { name?: string } | undefined)?.name === 'GoneException';

/**
 * `@connections` over the real management API client. The endpoint is the stage's
 * callback URL (set by the stack), never built from a request's domain name, which a
 * custom domain would break.
 */
export function managementApi(client: ApiGatewayManagementApiClient): ConnectionsApi {
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

export function managementClient(
  endpoint: string,
  extra: Partial<ConstructorParameters<typeof ApiGatewayManagementApiClient>[0]> = {},
): ApiGatewayManagementApiClient {
  // One try per call: posts are retried by post-retry.ts, under a deadline the SDK's own retries know nothing of.
  return new ApiGatewayManagementApiClient({ endpoint, maxAttempts: 1, ...extra });
}
