// Package modules is the cluster's module store: WebAssembly modules in a
// NATS JetStream object store, content-addressed by sha256, with tags
// (NAME:TAG) pointing at them. It owns the store's layout in NATS, the
// module reference syntax, the wasm header check, and the HTTP API that
// `wasmfleet module push|ls` talks to through the API server.
//
// # References
//
//	NAME:TAG              a tag, moved by every push to it
//	NAME@sha256:<hex>     a module by digest (64 lowercase hex digits)
//
// NAME is one or more '/'-separated components of [a-z0-9]+ joined by
// single '.', '_' or '-' (like OCI repository names), at most 255 bytes;
// TAG is [A-Za-z0-9_][A-Za-z0-9._-]{0,127}. There is no implicit tag. A
// digest names the same module under any NAME: content is global, NAME in a
// digest reference is informational.
//
// # Layout in NATS
//
// One object store bucket, WASMFLEET_MODULES (stream OBJ_WASMFLEET_MODULES,
// file storage, S2 compression, no TTL), holds everything:
//
//	sha256:<hex>       object: the module's bytes; <hex> is the sha256 of
//	                   exactly those bytes (NATS also records its own
//	                   SHA-256 of the chunks in the object's metadata)
//	tags/NAME:TAG      link (object-store link, same bucket) to the object
//	                   sha256:<hex> the tag points to; the link's
//	                   modification time is when the tag was last set
//
// As in any object store, an object's metadata is the last message on
// $O.WASMFLEET_MODULES.M.<base64url(object name)> and its bytes are the
// messages (128 KiB chunks) on $O.WASMFLEET_MODULES.C.<nuid>. Tags are
// object-store links rather than a separate KV bucket so that one bucket,
// and one set of permissions, serves readers: resolving a tag is one direct
// get of the link's metadata (its Opts.Link.Name is the digest), and
// getting tags/NAME:TAG through any object-store client follows the link
// to the module. A reader must check what it reads against the digest (as
// Store.Open does); the name is the only trusted checksum.
//
// Writing is the control plane's job (Store.Put, behind the API server);
// node agents read straight from the bucket over their NATS connection
// with Bind and Open, or with any object-store client. ReadSubjects lists
// the publish permissions a read-only NATS user needs.
//
// # Writes
//
// Put checks the 8-byte header (\0asm, version 1) before anything else,
// spools the module to a temporary file while hashing it (modules are never
// held in memory; the digest, the object's name, is known only at the
// end), enforces the size limit (Options.MaxModuleSize, default 128 MiB),
// then uploads the object unless an object with that name and that content
// exists, and finally sets the tag link. A rejected push writes nothing to
// NATS. Objects are never deleted yet: a moved tag leaves the old module in
// place, reachable by digest and listed untagged.
//
// # HTTP API
//
// Handler serves, under /apis/modules.wasmfleet.io/v1/modules, PUT .../NAME:TAG
// (raw module body, Content-Type application/wasm) answering
// {"name","tag","digest","size"}, and GET for the list or one reference.
// The API server authenticates and authorizes (admins only) before it and
// turns returned errors into Kubernetes Status answers.
package modules
