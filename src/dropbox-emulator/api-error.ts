/**
 * An HTTP answer the emulator gives instead of a result, shaped exactly like Dropbox's: 400s are plain
 * text, 401/409/429 carry `{"error_summary", "error"}` JSON. Thrown by handlers, rendered by the app.
 */
export class DropboxApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: string | Record<string, unknown>,
    readonly headers: Record<string, string> = {},
  ) {
    super(typeof body === 'string' ? body : String(body.error_summary ?? `HTTP ${status}`));
    this.name = 'DropboxApiError';
  }

  toResponse(): Response {
    const isText = typeof this.body === 'string';
    return new Response(isText ? (this.body as string) : JSON.stringify(this.body), {
      status: this.status,
      headers: {
        'Content-Type': isText ? 'text/plain; charset=utf-8' : 'application/json',
        ...this.headers,
      },
    });
  }
}

export function badRequest(route: string, detail: string): DropboxApiError {
  return new DropboxApiError(400, `Error in call to API function "${route}": ${detail}`);
}

/** `error_summary` always ends in an opaque suffix on Dropbox; clients must match on `.tag`. */
export function endpointError(summary: string, error: Record<string, unknown>): DropboxApiError {
  return new DropboxApiError(409, { error_summary: `${summary}/..`, error });
}

export function lookupError(tag: 'not_found' | 'not_file' | 'not_folder' | 'malformed_path'): DropboxApiError {
  return endpointError(`path/${tag}`, { '.tag': 'path', path: { '.tag': tag } });
}

export function authError(tag: 'invalid_access_token' | 'expired_access_token'): DropboxApiError {
  return new DropboxApiError(401, { error_summary: `${tag}/..`, error: { '.tag': tag } });
}

/**
 * auth.RateLimitError as JSON, or `text` as a plain-text body; Dropbox sends either, and always a
 * Retry-After header.
 */
export function rateLimited(
  retryAfterSeconds: number,
  options: { reason?: 'too_many_requests' | 'too_many_write_operations'; text?: string } = {},
): DropboxApiError {
  const reason = options.reason ?? 'too_many_requests';
  return new DropboxApiError(
    429,
    options.text ?? { error_summary: `${reason}/..`, error: { reason: { '.tag': reason }, retry_after: retryAfterSeconds } },
    { 'Retry-After': String(retryAfterSeconds) },
  );
}
