// A homeserver's static access tokens: lines of "TOKEN @user:server" from a file or an environment variable.
// Errors name the source and the line, never a token.
import { readSecret, type HomeserverConfig } from './config.js';

// What an access token may be made of; also keeps ";" free as the separator in environment variables.
const TOKEN = /^[A-Za-z0-9._~+/=-]{16,}$/;
const USER_ID = /^@[^:\s]+:\S+$/;

/** token -> user ID; empty when the homeserver has none. */
export function readStaticTokens(hs: HomeserverConfig): Map<string, string> {
  const tokens = new Map<string, string>();
  if (hs.staticAccessTokens === undefined) return tokens;
  const what = `homeserver ${hs.name} staticAccessTokens`;
  const text = readSecret(hs.staticAccessTokens, what);
  text.split(/[\n;]/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) return;
    const where = `${what}, entry ${index + 1}`;
    const [token, userId, ...rest] = line.split(/\s+/);
    if (userId === undefined || rest.length > 0) throw new Error(`${where}: expected "TOKEN @user:server"`);
    if (!TOKEN.test(token!)) throw new Error(`${where}: a token must be at least 16 characters of A-Z a-z 0-9 . _ ~ + / = -`);
    if (!USER_ID.test(userId)) throw new Error(`${where}: "${userId}" is not a Matrix user ID`);
    if (tokens.has(token!)) throw new Error(`${where}: the same token appears twice`);
    tokens.set(token!, userId);
  });
  return tokens;
}
