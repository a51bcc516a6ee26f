// Small schema pieces shared by the config schema's modules.

export const positiveInt = { type: 'integer', minimum: 1 } as const;
export const nonNegativeInt = { type: 'integer', minimum: 0 } as const;
export const httpUrl = { type: 'string', pattern: '^https?://[^\\s]+$' } as const;

/** What a datastore can hold; `all` in a config's forKinds means every one of these. */
export const MEDIA_KINDS = ['local_media', 'remote_media', 'thumbnails'] as const;

const fileSecret = { type: 'object', additionalProperties: false, required: ['file'], properties: { file: { type: 'string', minLength: 1 } } } as const;
const envSecret = { type: 'object', additionalProperties: false, required: ['env'], properties: { env: { type: 'string', minLength: 1 } } } as const;

export const secret = {
  description: 'a string, {file: PATH} or {env: NAME}',
  oneOf: [{ type: 'string', minLength: 1 }, fileSecret, envSecret],
} as const;

// Secrets only ever read from outside the config file: a file or an environment variable.
export const externalSecret = {
  description: '{file: PATH} or {env: NAME}',
  oneOf: [fileSecret, envSecret],
} as const;
