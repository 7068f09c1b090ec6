/* Test shim for running the Windows agent under Debian's wine 8, whose
 * bcryptprimitives.dll lacks ProcessPrng (imported by Rust's std since 1.78).
 * It forwards to RtlGenRandom (advapi32!SystemFunction036). Used only by the
 * packaging checks; never shipped. */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
