import { createHash, timingSafeEqual } from "node:crypto";

/**
 * Checks an Authorization header against the configured token in constant time.
 * Both sides are hashed first so neither the comparison's duration nor an early
 * length mismatch says anything about the token.
 */
export function bearerTokenMatches(header: string | undefined, token: string): boolean {
  const presented = header?.startsWith("Bearer ") ? header.slice("Bearer ".length) : "";
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(presented), digest(token)) && presented.length > 0;
}
