// The trial homeserver `media-repo serve` hosts when there is no config file: named after the listen address,
// its users authenticated by a static access token and its outbound requests signed by a key, both made on
// first start in dataDir. A config file replaces all of it.
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { buildConfig, type Config } from '../config/config.js';
import { generateSigningKey, writeKeyFile } from '../keys/key-files.js';

export const TRIAL_TOKEN_FILE = 'trial-access-token';
export const TRIAL_KEY_FILE = 'trial.signing.key';

export interface Trial {
  config: Config;
  /** What to print: the token and a ready-to-paste upload, download and thumbnail. */
  instructions: string;
}

/** `raw`: the config the trial starts from (listen, dataDir); its homeservers are replaced by the trial one. */
export async function prepareTrial(raw: Record<string, unknown> = {}): Promise<Trial> {
  const base = buildConfig(raw);
  const { port } = base.listen;
  const name = `localhost:${port}`;
  mkdirSync(base.dataDir, { recursive: true, mode: 0o700 });
  const tokenFile = join(base.dataDir, TRIAL_TOKEN_FILE);
  if (!existsSync(tokenFile)) {
    writeFileSync(tokenFile, `${randomBytes(24).toString('base64url')} @trial:${name}\n`, { mode: 0o600, flag: 'wx' });
  }
  const keyFile = join(base.dataDir, TRIAL_KEY_FILE);
  if (!existsSync(keyFile)) await writeKeyFile(keyFile, [generateSigningKey()], 'mmr');
  const config = buildConfig({
    ...raw,
    homeservers: [{
      name,
      hostnames: [`127.0.0.1:${port}`],
      signingKeyPath: keyFile,
      staticAccessTokens: { file: tokenFile },
    }],
  });
  const token = readFileSync(tokenFile, 'utf8').trim().split(/\s+/)[0]!;
  return { config, instructions: instructionsFor(name, `http://127.0.0.1:${port}`, token, relative(process.cwd(), tokenFile)) };
}

function instructionsFor(name: string, url: string, token: string, tokenFile: string): string {
  const auth = '-H "Authorization: Bearer $TOKEN"';
  return [
    `media-repo: no config.yaml here and no -config given: serving the trial homeserver ${name}.`,
    `Its users' access token is in ${tokenFile}. Try it with any PNG picture.png:`,
    '',
    `  TOKEN=${token}`,
    `  MXC=$(curl -sS ${auth} -H 'Content-Type: image/png' --data-binary @picture.png '${url}/_matrix/media/v3/upload?filename=picture.png' | sed -E 's|.*"mxc://([^"]+)".*|\\1|')`,
    `  curl -sS ${auth} -o download.png "${url}/_matrix/client/v1/media/download/$MXC"`,
    `  curl -sS ${auth} -o thumbnail.png "${url}/_matrix/client/v1/media/thumbnail/$MXC?width=96&height=96&method=crop"`,
    '',
    'For production write a config.yaml (see config.example.yaml): it replaces the trial entirely.',
    '',
  ].join('\n');
}
