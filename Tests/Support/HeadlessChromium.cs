using OpenQA.Selenium;
using OpenQA.Selenium.Chrome;
using OpenQA.Selenium.Support.UI;

namespace OnnxGpt.Tests.Support;

/// <summary>
/// A headless Chromium driven over WebDriver through the system's chromedriver (Debian: <c>apt-get install chromium
/// chromium-driver</c>; elsewhere set <c>ONNXGPT_CHROMIUM</c> and <c>ONNXGPT_CHROMEDRIVER</c> to the two programs).
/// Nothing is downloaded: both paths are given, so Selenium's driver manager never runs. A fresh profile per
/// browser, and none of Chromium's background connections (updates, sync, field trials).
/// </summary>
internal sealed class HeadlessChromium : IDisposable
{
    private readonly TempFolder _profile;

    private HeadlessChromium(ChromeDriver driver, TempFolder profile)
    {
        Driver = driver;
        _profile = profile;
    }

    public ChromeDriver Driver { get; }

    /// <summary>
    /// <c>ONNXGPT_BROWSER_TESTS=required</c> (CI sets it, having installed the browser): a missing browser fails the
    /// browser tests instead of leaving them inconclusive.
    /// </summary>
    public static bool Required => Environment.GetEnvironmentVariable("ONNXGPT_BROWSER_TESTS") == "required";

    /// <summary>
    /// Why no browser can start here (a program is missing: the message names it and how to install it), or null when
    /// both are found.
    /// </summary>
    public static string? MissingReason()
    {
        var (browser, driver) = (FindBrowser(), FindDriver());
        return browser is not null && driver is not null ? null
            : $"the browser tests need headless Chromium and its WebDriver, and {(browser is null ? "chromium" : "chromedriver")} was not found " +
              "(on Debian or Ubuntu: apt-get install chromium chromium-driver; elsewhere set ONNXGPT_CHROMIUM and ONNXGPT_CHROMEDRIVER to the programs).";
    }

    /// <summary>Starts a browser; call <see cref="MissingReason"/> first.</summary>
    public static HeadlessChromium Start(int width = 1280, int height = 860)
    {
        string browser = FindBrowser() ?? throw new InvalidOperationException(MissingReason());
        string driverPath = FindDriver() ?? throw new InvalidOperationException(MissingReason());
        var profile = new TempFolder();
        var options = new ChromeOptions { BinaryLocation = browser };
        options.AddArguments(
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-extensions",
            "--disable-default-apps", "--hide-scrollbars", $"--window-size={width},{height}", $"--user-data-dir={profile.Path}");
        options.SetLoggingPreference(LogType.Browser, LogLevel.All);
        var service = ChromeDriverService.CreateDefaultService(Path.GetDirectoryName(driverPath)!, Path.GetFileName(driverPath));
        service.SuppressInitialDiagnosticInformation = true;
        service.HideCommandPromptWindow = true;
        try
        {
            var driver = new ChromeDriver(service, options, TimeSpan.FromSeconds(60));
            return new HeadlessChromium(driver, profile);
        }
        catch
        {
            profile.Dispose();
            throw;
        }
    }

    /// <summary>Waits up to <paramref name="timeout"/> for <paramref name="condition"/> to return non-null (or true).</summary>
    public T WaitFor<T>(Func<IWebDriver, T> condition, TimeSpan timeout, string what)
    {
        var wait = new WebDriverWait(Driver, timeout) { PollingInterval = TimeSpan.FromMilliseconds(25), Message = $"waiting for {what}" };
        wait.IgnoreExceptionTypes(typeof(NoSuchElementException), typeof(StaleElementReferenceException));
        return wait.Until(condition);
    }

    /// <summary>The page's console messages at error level (e.g. a Content-Security-Policy violation).</summary>
    public IReadOnlyList<string> ConsoleErrors() =>
        [.. Driver.Manage().Logs.GetLog(LogType.Browser).Where(e => e.Level >= LogLevel.Severe).Select(e => e.Message)];

    public void Dispose()
    {
        Driver.Quit();
        Driver.Dispose();
        _profile.Dispose();
    }

    private static string? FindBrowser() => Find("ONNXGPT_CHROMIUM", "chromium", "chromium-browser", "google-chrome");

    private static string? FindDriver() => Find("ONNXGPT_CHROMEDRIVER", "chromedriver");

    private static string? Find(string variable, params string[] names)
    {
        if (Environment.GetEnvironmentVariable(variable) is { Length: > 0 } given)
        {
            return File.Exists(given) ? given : null;
        }

        var folders = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        return names.SelectMany(name => folders.Select(folder => Path.Combine(folder, name))).FirstOrDefault(File.Exists);
    }
}
