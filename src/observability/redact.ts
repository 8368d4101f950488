/**
 * Text from outside (an error message, a server's plain-text answer) with what could be a
 * credential taken out, before it reaches a log line, an account's `lastError` or an inspector:
 * an `Authorization` value (Dropbox's 400 for a malformed header quotes it), a Dropbox token
 * (`sl.…`, `pat.…`), the secrets of an OAuth URL's query (the SDK sends a refresh's token and app
 * secret there, and a URL a fetch refused is quoted whole), and a URL's user and password.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/\b(bearer|basic)(\s+)[^\s"',;]+/gi, '$1$2[redacted]')
    .replace(/\b(sl\.|pat\.)[A-Za-z0-9_.-]{16,}/g, '[redacted]')
    .replace(/([?&](?:refresh_token|client_secret|access_token|code|code_verifier|token)=)[^&\s"'#]+/gi, '$1[redacted]')
    .replace(/(\b[a-z][a-z0-9+.-]*:\/\/)[^/@\s"']+@/gi, '$1[redacted]@');
}
