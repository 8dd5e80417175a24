/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/*
 * MESSAGE_ID= values of the decision entries. Generated once (128-bit random), never
 * reused for another meaning; packaging/modelkeeper.catalog carries the text for each, so
 * `journalctl -x` explains an entry and `journalctl MESSAGE_ID=…` finds every one of a kind.
 */

#define MK_MESSAGE_STARTED          "aeae6991015f44e3ae5b2bd389f1bfd6"
#define MK_MESSAGE_STOPPING         "f60de302fda441b0ac95f749da0c7397"
#define MK_MESSAGE_RELOADED         "6d8c8af8632546ed9ec6b18bce484a95"
#define MK_MESSAGE_CONFIG_REFUSED   "37cb1e37d5b84f6fbd505db53fb14684"
#define MK_MESSAGE_JOB_FAILED       "519e7c5a5e2145f6bbe8f47f139c2b94"
#define MK_MESSAGE_UPDATE_AVAILABLE "d415a50c01d94296907eb93e75118695"
#define MK_MESSAGE_DOWNLOAD         "819d10dbb8db4343b1564c17c24fd75f"
#define MK_MESSAGE_VERIFIED         "2b76383ce87a4258b3a8deceaa28e481"
#define MK_MESSAGE_RELEASE_REFUSED  "581c7b2f63314115a4566e9a92786832"
#define MK_MESSAGE_IMPORTED         "61d9a787a3d44671b5d974d0db121e88"
#define MK_MESSAGE_ACTIVATED        "d1ba03eb28264949a4a8789974e4800a"
#define MK_MESSAGE_ROLLBACK         "e447df6b424742089bfdda1c07207ae3"
#define MK_MESSAGE_PROMOTED         "73cf676e7ff143539d4ec7b60f38ea78"
#define MK_MESSAGE_QUARANTINED      "65c6fb07ba2b49caaa1e362cef81119e"
#define MK_MESSAGE_RULE             "3990c967b8594ac3b4ff67abc079de59"
#define MK_MESSAGE_RECOMPRESSED     "7ae0eb8a04d146a9a3c8f488818adff3"
#define MK_MESSAGE_SCRUB            "d05c0e6bf870494fa42b3520a28e8b68"
#define MK_MESSAGE_GC               "305caac3d22e4f379180ead9ff14f363"
#define MK_MESSAGE_RECONCILED       "2fa1a75363cf4e23b738f6396f340335"
#define MK_MESSAGE_HOLD             "d0aea3fbd9d2458f94a27b86c9862c6d"
#define MK_MESSAGE_SERVE_RELOAD     "c397bdc78269403689f9d330576afa54"
#define MK_MESSAGE_SERVE_READY      "71837f7ff521499bb7219197a312f404"
#define MK_MESSAGE_PROBATION        "9fe14cdeae174de09f4b42008302f463"
#define MK_MESSAGE_ROOT_ROTATED     "dc5f8db981d046f6ad5efdcb934a2a70"
