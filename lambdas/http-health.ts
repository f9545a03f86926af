import type { APIGatewayProxyStructuredResultV2 } from 'aws-lambda';

/** `GET /health` -> `200 {"status":"ok"}`. Touches nothing, so it stays cheap for uptime checks. */
export function makeHealthHandler() {
  return async (): Promise<APIGatewayProxyStructuredResultV2> => ({
    statusCode: 200,
    headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store' },
    body: JSON.stringify({ status: 'ok' }),
  });
}

export const handler = makeHealthHandler();
