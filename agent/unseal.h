/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * Reading the files of a stored version as plaintext streams, whether they are sealed or not;
 * and the seal hook for writing new ones. Only the agent does this, and only the agent ever holds
 * the identity (DESIGN.md §5).
 */

#include "agent.h"
#include "install.h"
#include "store.h"
#include "stream.h"

typedef struct Unsealer Unsealer;

/* Prepare to read the files of meta's version; loads the identity when the version is sealed.
 * Failures are reported as the job's result. */
int unsealer_new(Agent *a, Store *s, const VersionMeta *meta, Unsealer **ret);
Unsealer *unsealer_free(Unsealer *u);
DEFINE_TRIVIAL_CLEANUP_FUNC(Unsealer *, unsealer_free);

/* A plaintext stream of one file of the version, from its first byte. Bytes are released only
 * when authenticated (a sealed file's chunk). */
int unsealer_open(Unsealer *u, const char *name, StreamReader *ret);
void unsealer_close(Unsealer *u, const char *name, StreamReader *r);

/* The hook that seals what the install pipeline writes (storage.encrypt). Reported as the job's
 * result on failure. */
int agent_seal_hook(Agent *a, const InstallSealHook **ret);

/* Decrypt a sealed version into $RUNTIME/plain/<model>/<id> (reused when complete), checking
 * every file against its plaintext digest; readable by storage.group. Reported as the job's
 * result on failure: -EBADMSG for a corrupt or tampered file, -ENOKEY for a wrong key. */
int agent_decrypt_version(Agent *a, Store *s, const VersionMeta *meta, StoreProgressFn progress, void *userdata);
