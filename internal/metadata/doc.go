// Package metadata lists the metadata of core objects a page at a time, for lists the
// manager's cache does not hold or must not be trusted for: the member records in the
// manager's namespace, the credentials Secrets of the namespaces it is granted.
package metadata
