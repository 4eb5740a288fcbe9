import { ErrorCode, SessionStoreError } from "../errors.js";

/**
 * Throws a `SessionStoreError` naming the package and range to install when `specifier` does not
 * resolve from `parentUrl`. A subpath entry calls it before loading the modules that import the
 * SDK: an ESM static import of a missing package fails at link time, before any code runs, with
 * an `ERR_MODULE_NOT_FOUND` from deep inside dist/.
 */
export function assertPeerInstalled(
  specifier: string,
  pkg: string,
  range: string,
  subpath: string,
  resolve: (specifier: string) => string,
): void {
  try {
    resolve(specifier);
  } catch (cause) {
    throw new SessionStoreError(
      ErrorCode.PEER_DEPENDENCY_MISSING,
      `${subpath} needs ${pkg}@${range}, which is not installed: run \`npm install ${pkg}@"${range}"\``,
      { cause, details: { package: pkg, range } },
    );
  }
}
