import { type HttpResult, httpFunction, json } from './edge/http.ts';

/** `GET /health` -> `200 {"status":"ok"}`. Touches nothing, so it stays cheap for uptime checks. */
export function makeHealthHandler() {
  return httpFunction(async (): Promise<HttpResult> => json(200, { status: 'ok' }));
}

export const handler = makeHealthHandler();
