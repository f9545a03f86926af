/** The event shapes API Gateway WebSocket APIs send to Lambda; the local gateway emits the same. */
import type {
  APIGatewayAuthorizerResult,
  APIGatewayEventWebsocketRequestContextV2,
  APIGatewayProxyStructuredResultV2,
  APIGatewayProxyWebsocketEventV2,
  APIGatewayRequestAuthorizerEvent,
} from 'aws-lambda';

/** `requestContext.identity` as API Gateway fills it for WebSocket events. */
export interface WsIdentity {
  sourceIp: string;
  userAgent?: string;
}

/**
 * `requestContext.authorizer` on every event after an Allow: the authorizer's `principalId` and
 * `context`, with every value as a string (API Gateway stringifies numbers and booleans).
 */
export type WsAuthorizerContext = Readonly<Record<string, string>> & { readonly principalId: string };

/**
 * The WebSocket request context. The `aws-lambda` type claims `messageId` on every event, but API
 * Gateway sends it on MESSAGE events only, so it is optional here.
 */
export interface WsRequestContext
  extends Omit<APIGatewayEventWebsocketRequestContextV2, 'messageId' | 'eventType'> {
  eventType: 'CONNECT' | 'MESSAGE' | 'DISCONNECT';
  messageId?: string;
  identity: WsIdentity;
  authorizer?: WsAuthorizerContext;
  disconnectStatusCode?: number;
  disconnectReason?: string;
}

/**
 * The REQUEST authorizer event of a WebSocket `$connect`. Unlike the REST shape in `aws-lambda`
 * it has no `resource`, `path`, `httpMethod` or `pathParameters`.
 */
export interface WsAuthorizerEvent extends Pick<APIGatewayRequestAuthorizerEvent, 'type' | 'methodArn'> {
  headers: Record<string, string>;
  multiValueHeaders: Record<string, string[]>;
  queryStringParameters?: Record<string, string>;
  multiValueQueryStringParameters?: Record<string, string[]>;
  stageVariables: Record<string, string>;
  requestContext: WsRequestContext;
}

/** The Lambda proxy event of `$connect`, `$default` and `$disconnect`. */
export interface WsProxyEvent extends Omit<APIGatewayProxyWebsocketEventV2, 'requestContext'> {
  headers?: Record<string, string>;
  multiValueHeaders?: Record<string, string[]>;
  requestContext: WsRequestContext;
}

export type WsProxyResult = Pick<
  APIGatewayProxyStructuredResultV2,
  'statusCode' | 'headers' | 'body' | 'isBase64Encoded'
>;

export type AuthorizerResult = APIGatewayAuthorizerResult;
