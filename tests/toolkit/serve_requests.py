"""Run inside the toolkit venv: load MODEL_DIR with sagemaker-pytorch-inference's own
HandlerService (what TorchServe calls on a SageMaker PyTorch endpoint) and answer each request
of REQUESTS_JSON, printing [{"status", "content_type", "body"}] as JSON on the last stdout line.

TorchServe itself is not run: a small context stands in for it, shaped like TorchServe's
`ts.context.Context` (system_properties, request_processor[0].get_request_properties(), and the
status / content type set per request on the request processor).

    python serve_requests.py MODEL_DIR REQUESTS_JSON   (env: what CreateModel's container sets)
"""

import base64
import json
import os
import sys


class RequestProcessor:
    def __init__(self, headers):
        self.headers = headers
        self.status, self.phrase, self.content_type = 200, "", None

    def get_request_properties(self):
        return self.headers


class Context:
    """TorchServe's Context, as far as the inference toolkit uses it."""

    def __init__(self, model_dir):
        self.system_properties = {"model_dir": model_dir, "gpu_id": None}
        self.request_processor = [RequestProcessor({})]

    def set_response_status(self, code=200, phrase="", idx=0):
        self.request_processor[idx].status, self.request_processor[idx].phrase = code, phrase

    def set_response_content_type(self, idx, value):
        self.request_processor[idx].content_type = value


def main(model_dir, requests_file):
    # The container: the model's code/ is importable (SAGEMAKER_SUBMIT_DIRECTORY=/opt/ml/model/code).
    sys.path.insert(0, os.path.join(model_dir, "code"))
    from sagemaker_pytorch_serving_container.handler_service import HandlerService

    service = HandlerService()
    context = Context(model_dir)
    service.initialize(context)
    answers = []
    for req in json.load(open(requests_file)):
        context.request_processor = [RequestProcessor(req["headers"])]
        (body,) = service.handle([{"body": base64.b64decode(req["body"])}], context)
        rp = context.request_processor[0]
        if isinstance(body, (bytes, bytearray)):
            body = body.decode("utf-8", "replace")
        answers.append({"status": rp.status, "content_type": rp.content_type, "body": body})
    print(json.dumps(answers))


if __name__ == "__main__":
    main(*sys.argv[1:])
