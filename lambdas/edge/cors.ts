/**
 * The CORS rules of the HTTP API, for the origins of `allowedOrigins`: the stack gives them
 * to API Gateway, the local HTTP gateway answers with them. Bearer tokens, never cookies,
 * so credentials are not allowed; `retry-after` is exposed so a browser can honour a 429.
 */
export const CORS = {
  allowMethods: ['GET', 'POST', 'DELETE', 'OPTIONS'],
  allowHeaders: ['authorization', 'content-type'],
  exposeHeaders: ['retry-after'],
  maxAgeS: 3600,
} as const;
