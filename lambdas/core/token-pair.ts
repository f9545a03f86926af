/**
 * The body of a successful login, refresh or token exchange. A module of its own, importing
 * nothing, so the packaged web client can carry its declaration without the server's modules.
 */
export interface TokenPair {
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
  refresh_token: string;
  /** With `messageEncryption`: the session's 256-bit JWE key, base64url. */
  message_key?: string;
}
