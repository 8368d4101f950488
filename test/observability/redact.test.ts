import { describe, expect, it } from 'vitest';
import { redactSecrets } from '../../src/observability/redact.js';

describe('redactSecrets', () => {
  it('takes out an Authorization value, as Dropbox quotes a malformed one in its 400', () => {
    const answer = 'Error in call to API function "files/list_folder": Bad HTTP "Authorization" header: "Bearer abc.DEF-123_secret". Expecting the format "Bearer <oauth2-access-token>".';
    const redacted = redactSecrets(answer);
    expect(redacted).not.toContain('abc.DEF-123_secret');
    expect(redacted).toContain('"Bearer [redacted]"');
    expect(redacted).toContain('files/list_folder'); // the rest still says what failed
    expect(redactSecrets('Authorization: Basic a2V5OnNlY3JldA==')).toBe('Authorization: Basic [redacted]');
  });

  it('takes out Dropbox tokens wherever they appear', () => {
    expect(redactSecrets('token sl.B1234567890abcdefghij-_xyz expired')).toBe('token [redacted] expired');
  });

  it("takes out an OAuth URL's query secrets and a URL's user and password, and keeps the rest", () => {
    const url = 'https://user:p4ss@api.example.com/oauth2/token?grant_type=refresh_token&refresh_token=r3fr3sh&client_id=key&client_secret=s3cr3t';
    const redacted = redactSecrets(`Request cannot be constructed from a URL that includes credentials: ${url}`);
    for (const secret of ['p4ss', 'r3fr3sh', 's3cr3t', 'user:']) expect(redacted).not.toContain(secret);
    expect(redacted).toContain('https://[redacted]@api.example.com/oauth2/token?grant_type=refresh_token&refresh_token=[redacted]&client_id=key&client_secret=[redacted]');
  });

  it('leaves text without secrets as it is', () => {
    const text = 'files/download: Dropbox answered 500: Internal Server Error (path /posts/a.md)';
    expect(redactSecrets(text)).toBe(text);
  });
});
