namespace MeshGuard.Proxy.FlowLog;

/// <summary>
/// Where a signed flow log goes beyond this disk (the control plane's witness, <c>ControlPlaneClient.FlowLogUploader</c>):
/// told of every signed record, and flushed once more when the log closes. FlowLog names only this, so the log does
/// not depend on the control-plane client that reads it.
/// </summary>
internal interface IFlowLogShipper
{
    void SignedRecordWritten();

    Task FlushAsync(CancellationToken cancellation);
}
