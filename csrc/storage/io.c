/*
 * io.c: the write path's writes and syncs, with a fault-injection hook so specs can make
 * the next N writes or syncs (after M that succeed) fail with ENOSPC or EIO where no small
 * filesystem can be mounted. It sits above whichever struct hr_fs the log uses (fs.h), so the hook works
 * over the simulated file system too.
 */
#include <errno.h>

#include "impl.h"

int hr__errno_code(int e)
{
    switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
        return HR_ENOSPACE;
    case ENOMEM:
        return HR_ENOMEM;
    default:
        /* EIO, EROFS, EBADF...: the device or filesystem will not take the write. */
        return HR_EIO;
    }
}

int hr__io_pwrite(struct hr__io *io, struct hr_fs *fs, int h, const void *buf, size_t len,
                  uint64_t off)
{
    if (io != NULL && io->fail_writes > 0 && io->skip_writes > 0) {
        io->skip_writes--;
    } else if (io != NULL && io->fail_writes > 0) {
        io->fail_writes--;
        /* Write part of it first, as a filling disk does: rollback must cope. */
        if (len > 1) {
            (void)hr_fs_pwrite(fs, h, buf, len / 2, off);
        }
        return -io->write_errno;
    }
    return hr_fs_pwrite(fs, h, buf, len, off);
}

int hr__io_sync(struct hr__io *io, struct hr_fs *fs, int h, bool data_only)
{
    if (io != NULL && io->fail_syncs > 0 && io->skip_syncs > 0) {
        io->skip_syncs--;
    } else if (io != NULL && io->fail_syncs > 0) {
        io->fail_syncs--;
        return -io->sync_errno;
    }
    return hr_fs_sync(fs, h, data_only);
}

int hr__io_replace(struct hr__io *io, struct hr_fs *fs, const char *tmp, const char *path,
                   const void *b, size_t len, int dir_h, const char *dir, bool *renamed,
                   const char **what)
{
    *renamed = false;
    *what = "create";
    int dh = -1;
    int r;
    int h = hr_fs_open(fs, tmp, HR_FS_RDWR | HR_FS_CREATE | HR_FS_TRUNC);
    if (h < 0) {
        r = h;
        goto fail;
    }
    *what = "write";
    if ((r = hr__io_pwrite(io, fs, h, b, len, 0)) < 0) {
        goto fail;
    }
    *what = "fsync";
    if ((r = hr__io_sync(io, fs, h, false)) < 0) {
        goto fail;
    }
    hr_fs_close(fs, h);
    h = -1;
    *what = "rename";
    if ((r = hr_fs_rename(fs, tmp, path)) < 0) {
        goto fail;
    }
    *renamed = true;
    *what = "fsync dir";
    if (dir_h < 0 && (dir_h = dh = hr_fs_open(fs, dir, HR_FS_DIR)) < 0) {
        r = dh;
        goto fail;
    }
    if ((r = hr__io_sync(io, fs, dir_h, false)) < 0) {
        goto fail;
    }
    if (dh >= 0) {
        hr_fs_close(fs, dh);
    }
    return 0;
fail:
    if (h >= 0) {
        hr_fs_close(fs, h);
    }
    if (dh >= 0) {
        hr_fs_close(fs, dh);
    }
    if (!*renamed) {
        hr_fs_unlink(fs, tmp);
    }
    return r;
}
