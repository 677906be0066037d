/** The front door's input bounds, stated once: the server enforces them, the documents cite them. */

/** Deeper JSON bodies are refused before parsing: validating them recursively would overflow the stack. */
export const MAX_JSON_DEPTH = 64;

/** Request line and headers together, as Node's parser counts them (its default, stated). */
export const MAX_HEADER_BYTES = 16 * 1024;
