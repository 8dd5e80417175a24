/* SPDX-License-Identifier: Apache-2.0 */
#pragma once

/* The methods of dev.modelkeeper.Manager1; control.c does the transport. */

#include <systemd/sd-bus.h>

#include "control.h"

extern const sd_bus_vtable control_vtable[];

/* 0 when the caller may change things, else an AccessDenied error set on error. */
int control_check_admin(Control *c, sd_bus_message *m, sd_bus_error *error);
Manager *control_manager(Control *c);
