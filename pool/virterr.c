/* SPDX-License-Identifier: GPL-2.0-or-later */
#include <stdlib.h>
#include <string.h>
#include <libvirt/virterror.h>

#include "tcpkeep.h"
#include "virterr.h"

const char *
virterr_hint(unsigned ended)
{
    virErrorPtr e = virGetLastError();

    if (!e || !e->message)
        return tcpkeep_open_hint(ended);
    if (strstr(e->message, "Failed to verify peer's certificate"))
        return "TLS: the server's certificate was refused: it is not signed "
               "by the CA in our pkipath, or not issued for the host name "
               "in the URI";
    if (strstr(e->message, "Unable to read TLS confirmation"))
        return "TLS: the server refused our client certificate: it is not "
               "signed by a CA the server trusts, or its DN is not in the "
               "server's tls_allowed_dn_list";
    if (strstr(e->message, "Cannot read CA certificate") ||
        strstr(e->message, "Cannot read client certificate") ||
        strstr(e->message, "Cannot read client key"))
        return "TLS: our certificates are missing: give their directory "
               "with ?pkipath=DIR (cacert.pem, clientcert.pem, clientkey.pem)";
    return tcpkeep_open_hint(ended);
}

void
virterr_quiet_log(void)
{
    /* Errors only: libvirt reports them to us too, and we say them once. */
    setenv("LIBVIRT_LOG_OUTPUTS", "4:file:/dev/null", 0);
}
