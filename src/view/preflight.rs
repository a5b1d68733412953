//! What the window needs from the machine, checked before it opens: winit and Bevy's renderer panic (with a
//! backtrace) where an X server or a render adapter is missing, so `qamlab view` asks first and says what to do.

use std::sync::Arc;

use bevy::render::renderer::{RenderInstance, WgpuWrapper};
use bevy::render::settings::{Backends, WgpuSettings};

/// What gives a render adapter, for the errors of `qamlab view` and `qamlab eval --video`.
pub const VULKAN_DRIVER_HELP: &str = "a Vulkan driver (a GPU's, or mesa's software renderer lavapipe: the Debian \
     package mesa-vulkan-drivers with libvulkan1, which scripts/setup.sh installs); `qamlab doctor` lists the \
     drivers it finds";

/// The X11 client libraries winit opens at run time (x11-dl's names), with the Debian package of each.
#[cfg(target_os = "linux")]
const X11_LIBRARIES: [(&str, &str); 4] = [
    ("libX11.so.6", "libx11-6"),
    ("libX11-xcb.so.1", "libx11-xcb1"),
    ("libXcursor.so.1", "libxcursor1"),
    ("libXi.so.6", "libxi6"),
];

/// Checks that the window can open on an X11 display: DISPLAY is set, the X11 libraries winit opens are
/// installed, and the X server DISPLAY names accepts a connection (the same `XOpenDisplay` winit calls).
pub fn check_display() -> anyhow::Result<()> {
    #[cfg(target_os = "linux")]
    {
        const WITHOUT_A_SCREEN: &str =
            "run it in a desktop session, or without a screen under `xvfb-run -a qamlab view ...`";
        // The window is built for X11 only (XWayland serves Wayland desktops).
        let Some(display) = std::env::var_os("DISPLAY").filter(|d| !d.is_empty()) else {
            let wayland = std::env::var_os("WAYLAND_DISPLAY").is_some_and(|d| !d.is_empty());
            anyhow::bail!(
                "qamlab view needs an X11 display and DISPLAY is not set{}: {WITHOUT_A_SCREEN}",
                if wayland {
                    " (WAYLAND_DISPLAY is, but the window speaks X11 only: enable XWayland)"
                } else {
                    ""
                }
            );
        };
        let missing: Vec<(&str, &str)> = X11_LIBRARIES
            .into_iter()
            .filter(|(library, _)| !x11::can_load(library))
            .collect();
        if !missing.is_empty() {
            let names: Vec<&str> = missing.iter().map(|(library, _)| *library).collect();
            let packages: Vec<&str> = missing.iter().map(|(_, package)| *package).collect();
            anyhow::bail!(
                "qamlab view needs the X11 client libraries, and {} cannot be loaded: install the Debian \
                 package(s) {} (scripts/setup.sh installs them)",
                names.join(", "),
                packages.join(" ")
            );
        }
        if !x11::server_answers() {
            anyhow::bail!(
                "qamlab view cannot open the X11 display DISPLAY={}: no X server answers there, or it refused \
                 the connection (the Xvfb or `ssh -X` session it names may have ended, or XAUTHORITY may lack \
                 its cookie): {WITHOUT_A_SCREEN}",
                display.to_string_lossy()
            );
        }
    }
    Ok(())
}

/// Checks that Bevy's renderer will find an adapter: the backends it would use (`WGPU_BACKEND` chooses them)
/// offer one. Bevy's renderer panics where it finds none.
pub fn check_render_adapter() -> anyhow::Result<()> {
    let backends = WgpuSettings::default().backends.unwrap_or(Backends::all());
    let probe = || {
        // The instance type comes from Bevy's wrapper: no wgpu dependency of our own to keep in step with it.
        let instance = RenderInstance(Arc::new(WgpuWrapper::new(Default::default())));
        bevy::tasks::block_on(instance.enumerate_adapters(backends)).len()
    };
    // The Vulkan loader's complaints on the way would precede the error below, which says what to do; with
    // RUST_LOG set they stay, for whoever looks into why.
    let adapters = if std::env::var_os("RUST_LOG").is_some() {
        probe()
    } else {
        tracing::subscriber::with_default(tracing::subscriber::NoSubscriber::default(), probe)
    };
    anyhow::ensure!(
        adapters > 0,
        "qamlab view: no render adapter: the window needs {VULKAN_DRIVER_HELP} (RUST_LOG=wgpu_hal=info shows \
         what the Vulkan loader tried)"
    );
    Ok(())
}

/// The X11 client library, opened as winit opens it (with dlopen, so it need not be there at build time).
#[cfg(target_os = "linux")]
mod x11 {
    use std::ffi::{CString, c_char, c_int, c_void};

    type XInitThreads = unsafe extern "C" fn() -> c_int;
    type XOpenDisplay = unsafe extern "C" fn(*const c_char) -> *mut c_void;
    type XCloseDisplay = unsafe extern "C" fn(*mut c_void) -> c_int;

    /// Opens `library`, leaving it loaded: winit opens it next (a library unloaded after Xlib has set up its
    /// thread support could leave dangling handlers behind).
    fn open(library: &str) -> Option<*mut c_void> {
        let name = CString::new(library).ok()?;
        // SAFETY: a NUL-terminated name; loading an X11 client library runs no code of ours.
        let handle = unsafe { libc::dlopen(name.as_ptr(), libc::RTLD_LAZY | libc::RTLD_LOCAL) };
        (!handle.is_null()).then_some(handle)
    }

    /// Whether `library` is installed and loads.
    pub fn can_load(library: &str) -> bool {
        open(library).is_some()
    }

    /// Whether the X server that DISPLAY names accepts a connection from Xlib (then closed again).
    pub fn server_answers() -> bool {
        let Some(xlib) = open("libX11.so.6") else {
            return false;
        };
        let symbol = |name: &std::ffi::CStr| {
            // SAFETY: a valid handle from dlopen and a NUL-terminated name.
            let address = unsafe { libc::dlsym(xlib, name.as_ptr()) };
            (!address.is_null()).then_some(address)
        };
        let (Some(init), Some(open_display), Some(close_display)) = (
            symbol(c"XInitThreads"),
            symbol(c"XOpenDisplay"),
            symbol(c"XCloseDisplay"),
        ) else {
            return false;
        };
        // SAFETY: the symbols are Xlib's functions with these C signatures. XInitThreads comes first, as Xlib
        // asks of a threaded program and as winit calls it (a second call does nothing); the display opened is
        // closed before winit opens its own.
        unsafe {
            let init = std::mem::transmute::<*mut c_void, XInitThreads>(init);
            let open_display = std::mem::transmute::<*mut c_void, XOpenDisplay>(open_display);
            let close_display = std::mem::transmute::<*mut c_void, XCloseDisplay>(close_display);
            init();
            let display = open_display(std::ptr::null());
            if display.is_null() {
                return false;
            }
            close_display(display);
        }
        true
    }
}
