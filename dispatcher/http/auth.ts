import { createHash, timingSafeEqual } from "node:crypto";

// RFC 9110 §11.1: the auth scheme is case-insensitive; one or more spaces separate it from the credentials.
const BEARER = /^bearer +(\S+) *$/i;

/**
 * Checks an Authorization header against the configured token in constant time.
 * Both sides are hashed first so neither the comparison's duration nor an early
 * length mismatch says anything about the token.
 */
export function bearerTokenMatches(header: string | undefined, token: string): boolean {
  const presented = BEARER.exec(header ?? "")?.[1] ?? "";
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}
