// Small schema pieces shared by the config schema's modules.

export const positiveInt = { type: 'integer', minimum: 1 } as const;
export const nonNegativeInt = { type: 'integer', minimum: 0 } as const;
