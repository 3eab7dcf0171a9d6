/**
 * The TypeScript type of a value a JSON schema (declared `as const`) accepts,
 * so a route's body type is derived from the schema ajv checks and the OpenAPI
 * document shows, never written twice. Covers the keywords the routes' schemas
 * use: type (object, array, string, integer, number, boolean), properties,
 * required, default (a property with a default is always present after
 * validation), enum, const, anyOf, items.
 */

type Simplify<T> = { [K in keyof T]: T[K] } & {};

type RequiredKeys<S> = S extends { readonly required: readonly (infer K)[] } ? K : never;
type DefaultedKeys<P> = { [K in keyof P]: P[K] extends { readonly default: unknown } ? K : never }[keyof P];

type ObjectOf<S, P> = Simplify<
  { -readonly [K in keyof P as K extends RequiredKeys<S> | DefaultedKeys<P> ? K : never]: FromSchema<P[K]> } &
  { -readonly [K in keyof P as K extends RequiredKeys<S> | DefaultedKeys<P> ? never : K]?: FromSchema<P[K]> }
>;

export type FromSchema<S> =
  S extends { readonly const: infer C } ? C
  : S extends { readonly enum: readonly (infer E)[] } ? E
  : S extends { readonly anyOf: readonly (infer A)[] } ? FromSchema<A>
  : S extends { readonly type: 'string' } ? string
  : S extends { readonly type: 'integer' | 'number' } ? number
  : S extends { readonly type: 'boolean' } ? boolean
  : S extends { readonly type: 'array'; readonly items: infer I } ? FromSchema<I>[]
  : S extends { readonly type: 'object'; readonly properties: infer P } ? ObjectOf<S, P>
  : S extends { readonly type: 'object' } ? Record<string, unknown>
  : unknown;
